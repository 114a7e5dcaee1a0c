// The clerk's list of today's appointments: the states follow the server every few seconds,
// and a new knock is announced (screen readers hear it through the status region).

const POLL_MS = 5000;
const table = document.getElementById("afspraken");
const notice = document.getElementById("melding");

async function refresh() {
  let response;
  try {
    response = await fetch("/api/appointments", { headers: { Accept: "application/json" } });
  } catch {
    return; // offline for a moment; the next round tries again
  }
  if (response.status === 401) {
    location.assign("/balie/inloggen");
    return;
  }
  if (!response.ok) return;
  const states = JSON.parse(table.dataset.states);
  const { appointments } = await response.json();
  let newlyWaiting = false;
  for (const { dossier_id: id, state } of appointments) {
    const cell = table.querySelector(`tr[data-dossier="${id}"] [data-state]`);
    if (!cell || cell.dataset.state === state) continue;
    newlyWaiting ||= state === "waiting";
    cell.dataset.state = state;
    cell.className = cell.className.replace(/balie-state--\S+/, `balie-state--${state}`);
    cell.textContent = states[state] || state;
  }
  if (newlyWaiting) notice.textContent = table.dataset.waitingText;
}

if (table) setInterval(refresh, POLL_MS);
