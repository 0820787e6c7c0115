// The note dialog for acknowledge and resolve: Enter sends, Shift+Enter is a new line, Esc
// cancels. The request is made from here so an error (e.g. someone else took the alarm
// first) is shown where the operator is looking, and the dialog stays open to retry.

import { replace } from "./dom.js";

export function openAction({ title, summary, verb, submit }) {
  const dialog = document.getElementById("action-dialog");
  const form = dialog.querySelector("form");
  const note = dialog.querySelector("#action-note");
  const error = dialog.querySelector(".error");
  const send = dialog.querySelector("button[value=send]");
  const cancel = dialog.querySelector("button[value=cancel]");
  replace(dialog.querySelector("h2"), title);
  replace(dialog.querySelector(".summary"), summary);
  send.textContent = verb;
  note.value = "";
  error.textContent = "";

  return new Promise((resolve) => {
    const finish = (result) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      note.removeEventListener("keydown", onKey);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(result);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      send.disabled = true;
      try {
        finish(await submit(note.value.trim() || null));
      } catch (failure) {
        error.textContent = failure.message;
      } finally {
        send.disabled = false;
      }
    };
    const onKey = (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit(send);
      }
    };
    const onClose = () => finish(null);
    const onCancel = () => finish(null);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    note.addEventListener("keydown", onKey);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    note.focus();
  });
}
