// The operator's token lives in sessionStorage: it goes when the tab closes or on sign-out,
// and never appears in a URL.

const KEY = "telecare.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function keep(value) {
  sessionStorage.setItem(KEY, value);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}
