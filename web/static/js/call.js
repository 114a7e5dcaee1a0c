// The call page: device check -> waiting room -> call, for resident, interpreter and clerk.
// Texts come from the page (config.texts) so this module holds no words of its own.

import { Devices, EchoTest } from "./devices.js";
import { Mesh } from "./mesh.js";
import { Signaling } from "./signaling.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("balie-config").dataset.config);
const T = config.texts;
const role = config.role;
const PEER_GRACE_MS = 30000; // how long a vanished participant's connection is kept

const peers = new Map(); // participant id -> { role, status }
let admitted = false;
let over = false;
let inCall = false;
let reconnecting = false;
let me = null; // my participant id, from the server's hello

function say(text) {
  $("status").textContent = text;
}

function roleName(someRole) {
  return T[`role.${someRole}`] || someRole;
}

function show(step) {
  for (const id of ["stap-apparaten", "stap-wachtkamer", "stap-gesprek"]) $(id).hidden = id !== step;
  // Switching language reloads the page; once waiting or in the call, that would drop it.
  $("taal").hidden = step !== "stap-apparaten";
  const heading = $(step).querySelector("h2");
  heading.tabIndex = -1;
  heading.focus();
}

// ---- devices and the echo test

const devices = new Devices({
  cameraSelect: $("camera"),
  microphoneSelect: $("microfoon"),
  previews: [$("eigen-beeld"), $("eigen-beeld-gesprek")],
  onChange: (stream) => mesh.setStream(stream),
});
const echo = new EchoTest({ stunUrls: config.stun, csrfToken: config.csrf, video: $("echo-beeld") });
const echoText = $("echo-test").textContent;
echo.onStop = () => {
  $("echo-test").textContent = echoText;
  $("echo-figuur").hidden = true;
};

$("apparaten-aan").addEventListener("click", async () => {
  try {
    const stream = await devices.start();
    $("echo-test").disabled = false;
    say(stream.getVideoTracks().length ? T["devices.ready"] : T["no_camera"]);
  } catch {
    say(T["devices.denied"]);
  }
});

$("echo-test").addEventListener("click", async () => {
  if (echo.running) {
    echo.stop();
    say(T["echo.stopped"]);
    return;
  }
  $("echo-figuur").hidden = false;
  const outcome = await echo.start(devices.stream);
  if (outcome === "running") {
    $("echo-test").textContent = T["echo.stop"];
    say(T["echo.running"]);
  } else {
    say(outcome === "busy" ? T["echo.busy"] : T["echo.failed"]);
  }
});

$("verder").addEventListener("click", () => {
  echo.stop();
  if (role === "clerk") {
    show("stap-gesprek");
  } else {
    show("stap-wachtkamer");
    signaling.send({ type: "knock" }); // again, after a refusal; a new socket knocks on hello
  }
  signaling.connect();
});

// ---- signaling and the mesh

const scheme = location.protocol === "https:" ? "wss" : "ws";
const signaling = new Signaling(`${scheme}://${location.host}/ws/calls/${config.dossier}`);
const mesh = new Mesh({
  role,
  signaling,
  onRemoteStream: showRemote,
  onPeerClosed: (id) => {
    const figure = $(`deelnemer-${id}`);
    if (figure) figure.remove();
  },
});
window.balieCall = { stats: () => mesh.stats() };

signaling.addEventListener("down", () => {
  if (over) return;
  reconnecting = true;
  say(T.reconnecting);
});
signaling.addEventListener("refused", () => finish(T.ended));
signaling.addEventListener("message", ({ detail }) => onMessage(detail));

function onMessage(message) {
  switch (message.type) {
    case "hello":
      me = message.you;
      if (reconnecting) {
        say(T.reconnected);
        // Who is still there? The server tells us again; until then, nobody is "in".
        for (const peer of peers.values()) peer.status = "unknown";
      }
      reconnecting = false;
      if (role !== "clerk" && !admitted && !over) signaling.send({ type: "knock" });
      if (role !== "clerk" && admitted && message.state !== "in_call") {
        // Back after the call went on without us: the clerk has to let us in again.
        admitted = false;
        signaling.send({ type: "knock" });
      }
      break;
    case "participant":
      onParticipant(message);
      break;
    case "admitted":
      admitted = true;
      mesh.iceServers = message.ice_servers || [];
      if (!inCall) {
        inCall = true;
        if (role !== "clerk") say(T.admitted);
        show("stap-gesprek");
      }
      for (const [id, peer] of peers) {
        if (peer.status === "in" && mesh.offersTo(peer.role)) mesh.connect(id, peer.role);
      }
      break;
    case "denied":
      say(T.denied);
      show("stap-apparaten");
      break;
    case "offer":
    case "answer":
    case "ice":
      mesh.handle(message, (id) => (peers.get(id) || { role: "resident" }).role);
      break;
    case "chat":
      addChat(message);
      break;
    case "document":
    case "payment":
      // dossier.js shows documents and payments; it hears of them through the page.
      document.dispatchEvent(new CustomEvent("balie:notice", { detail: message }));
      break;
    case "ended":
      finish(T.ended);
      break;
    case "error":
      // A relayed message for someone who is reconnecting right now: the mesh retries.
      if (message.code !== "unknown_participant") say(`${T.error} ${message.message}`);
      break;
    default:
      break;
  }
}

function onParticipant({ id, role: theirRole, status }) {
  if (id === me) {
    if (status === "waiting") say(T.knocked); // the knock has arrived
    return;
  }
  const before = peers.get(id);
  if (status === "left") {
    if (before) before.status = "left";
    if (role === "clerk") dropWaiting(id);
    if (inCall && before && before.role) say(`${roleName(before.role)} ${T.peer_left}`);
    setTimeout(() => {
      const now = peers.get(id);
      if (now && now.status === "left") {
        peers.delete(id);
        mesh.close(id);
      }
    }, PEER_GRACE_MS);
    return;
  }
  const shownStatus = status === "joined" ? "waiting-room" : status;
  peers.set(id, { role: theirRole, status: shownStatus });
  if (status === "waiting" && role === "clerk") addWaiting(id, theirRole);
  if (status === "in") {
    if (role === "clerk") dropWaiting(id);
    if (inCall && (!before || before.status !== "in")) say(`${roleName(theirRole)} ${T.peer_joined}`);
    const wasIn = before && before.status === "in";
    if (admitted && !wasIn && mesh.offersTo(theirRole)) mesh.connect(id, theirRole);
  }
}

function showRemote(id, theirRole, stream) {
  let figure = $(`deelnemer-${id}`);
  if (!figure) {
    figure = document.createElement("figure");
    figure.id = `deelnemer-${id}`;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    caption.textContent = `${T.video_of} ${roleName(theirRole).toLowerCase()}`;
    figure.append(video, caption);
    $("beelden").prepend(figure);
  }
  const video = figure.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
}

function finish(text) {
  over = true;
  if ($("na-afloop")) $("na-afloop").hidden = false; // the clerk's way on: export
  echo.stop();
  signaling.close();
  mesh.closeAll();
  devices.stopTracks();
  say(text);
  for (const button of document.querySelectorAll("#stap-gesprek button, #chat-form textarea")) {
    button.disabled = true;
  }
}

// ---- controls

function toggle(button, pressed, onText, offText) {
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = pressed ? onText : offText;
}

const muteButton = $("microfoon-knop");
const muteText = muteButton.textContent;
muteButton.addEventListener("click", () => {
  const track = devices.audioTrack;
  if (!track) return;
  track.enabled = !track.enabled;
  toggle(muteButton, !track.enabled, T.unmute, muteText);
});

const cameraButton = $("camera-knop");
const cameraText = cameraButton.textContent;
cameraButton.addEventListener("click", () => {
  const track = devices.videoTrack;
  if (!track) return;
  track.enabled = !track.enabled;
  toggle(cameraButton, !track.enabled, T.camera_on, cameraText);
});

const audioOnlyButton = $("alleen-geluid");
const audioOnlyText = audioOnlyButton.textContent;
audioOnlyButton.addEventListener("click", async () => {
  const on = audioOnlyButton.getAttribute("aria-pressed") !== "true";
  let track = null;
  if (on) {
    devices.stopCamera();
  } else {
    track = await devices.reopenCamera();
  }
  mesh.setAudioOnly(on, track);
  $("beelden").classList.toggle("balie-audio-only", on);
  cameraButton.disabled = on;
  toggle(audioOnlyButton, on, T.video_back, audioOnlyText);
});

if (role === "clerk") {
  $("beeindigen").addEventListener("click", () => signaling.send({ type: "end" }));
  $("tolklink-maken").addEventListener("click", makeInterpreterLink);
} else {
  $("verlaten").addEventListener("click", () => {
    signaling.send({ type: "leave" });
    finish(T.left);
  });
}

async function makeInterpreterLink() {
  const response = await fetch(`/api/appointments/${config.appointment}/guest-link`, {
    method: "POST",
    headers: { "X-CSRF-Token": config.csrf },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    say(`${T.error} ${body.message || response.status}`);
    return;
  }
  const { guest_url: url } = await response.json();
  $("tolklink").value = url;
  $("tolklink-veld").hidden = false;
  $("tolklink").focus();
  $("tolklink").select();
  say(T.interpreter_made);
}

// ---- the clerk's waiting list

function addWaiting(id, theirRole) {
  if ($(`wacht-${id}`)) return;
  const item = document.createElement("li");
  item.id = `wacht-${id}`;
  const text = document.createElement("span");
  text.textContent = `${roleName(theirRole)} ${T.peer_waiting}`;
  const admit = document.createElement("button");
  admit.type = "button";
  admit.className = "utrecht-button utrecht-button--primary-action";
  admit.textContent = T.admit;
  admit.addEventListener("click", () => {
    signaling.send({ type: "admit", participant: id });
    dropWaiting(id);
  });
  const deny = document.createElement("button");
  deny.type = "button";
  deny.className = "utrecht-button utrecht-button--secondary-action";
  deny.textContent = T.deny;
  deny.addEventListener("click", () => {
    signaling.send({ type: "deny", participant: id });
    dropWaiting(id);
  });
  item.append(text, admit, deny);
  $("wachtenden").append(item);
  $("niemand").hidden = true;
  say(T.someone_waiting);
}

function dropWaiting(id) {
  const item = $(`wacht-${id}`);
  if (item) item.remove();
  if (role === "clerk") $("niemand").hidden = $("wachtenden").children.length > 0;
}

// ---- chat

function addChat({ from, text, sent_at: sentAt }) {
  const log = $("chat-log");
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "balie-chat-meta";
  who.textContent = from === role ? T.you : roleName(from);
  const when = document.createElement("time");
  when.dateTime = sentAt;
  when.textContent = new Date(sentAt).toLocaleTimeString(document.documentElement.lang, {
    hour: "2-digit",
    minute: "2-digit",
  });
  const body = document.createElement("span");
  body.textContent = text;
  item.append(who, when, body);
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

for (const message of config.history) addChat(message);

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = $("chat-tekst");
  const text = field.value.trim();
  if (!text) return;
  if (signaling.send({ type: "chat", text })) {
    field.value = ""; // the server echoes the message back once it is in the dossier
  } else {
    say(T.reconnecting);
  }
});

$("chat-tekst").addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter starts a new line (as in most chat programs).
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("chat-form").requestSubmit();
  }
});

// The buttons start disabled in the HTML: a click before this module has run would do
// nothing at all. From here on they work.
$("apparaten-aan").disabled = false;
$("verder").disabled = false;
