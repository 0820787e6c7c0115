// The HTTP API with the session's bearer token; errors carry the status and the API's detail.

import { forget, token } from "./session.js";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

// Set by main.js: what to do when the token is refused (back to the sign-in screen).
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${token()}`, ...extra };
}

export async function api(path, { method = "GET", params, body, bearer } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = bearer ? { Authorization: `Bearer ${bearer}` } : authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.headers.get("content-type")?.includes("json")
    ? await response.json()
    : null;
  if (response.status === 401 && !bearer) {
    forget();
    onUnauthorized("Your token was refused (revoked or expired). Sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, data?.detail ?? response.statusText);
  return data;
}

// Every page of a list (the queue is small: a few hundred rows at most).
export async function all(path, params = {}, cap = 5000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { params: { ...params, limit: 1000, cursor } });
    items.push(...page.items);
    cursor = page.next;
  } while (cursor && items.length < cap);
  return items;
}
