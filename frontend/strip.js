// The live strip (frontend/strip.py): the page's HTML at mount, then the route's every refresh.
// One request at a time (the next waits for the answer); none while the tab is hidden (a
// background tab costs nothing and catches up the moment it is shown). Unchanged answers leave
// the DOM alone.
export default function (component) {
  const { data, parentElement } = component;
  // Streamlit calls this again when the data changes (each page run) and calls the returned
  // cleanup only at unmount: stop the previous call's loop here.
  parentElement.paStripStop?.();
  let box = parentElement.querySelector(".pa-strip");
  if (!box) {
    box = document.createElement("div");
    box.className = "pa-strip";
    parentElement.appendChild(box);
  }
  let note = parentElement.querySelector(".pa-strip-error");
  if (!note) {
    note = document.createElement("div");
    note.className = "pa-status pa-strip-error";
    parentElement.appendChild(note);
  }
  let shownHtml = data.html;
  box.innerHTML = shownHtml;
  note.textContent = "";
  if (!data.every_ms) return; // paused
  let stopped = false;
  let timer = null;
  let busy = false;
  const poll = async () => {
    if (stopped || busy) return;
    clearTimeout(timer);
    timer = null;
    if (document.hidden) return; // resumed by "visibilitychange"
    busy = true;
    try {
      const answer = await fetch(data.url, { cache: "no-store" });
      if (!answer.headers.has(data.marker)) throw new Error("no strip route on this server");
      if (!answer.ok) throw new Error(await answer.text());
      const html = await answer.text();
      if (!stopped && html !== shownHtml) box.innerHTML = shownHtml = html;
      note.textContent = "";
    } catch (err) {
      note.textContent = "⚠️ strip not updating: " + (err.message || err);
    } finally {
      busy = false;
    }
    if (!stopped) timer = setTimeout(poll, data.every_ms);
  };
  const shown = () => {
    if (!document.hidden && timer === null) poll();
  };
  document.addEventListener("visibilitychange", shown);
  timer = setTimeout(poll, data.every_ms);
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", shown);
  };
  parentElement.paStripStop = stop;
  return stop;
}
