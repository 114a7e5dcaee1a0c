// The call's WebSocket: JSON messages in and out, and reconnecting when the network drops.
//
// Messages sent while the socket is down are not queued: offers and candidates go stale, and
// the call logic re-sends what matters (knock, ICE restart) once the server says hello again.

const MAX_BACKOFF_MS = 10000;

export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
    window.addEventListener("online", () => this.reconnectNow());
  }

  connect() {
    if (this.closed || this.ws) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is not ours to act on
      }
      this.dispatchEvent(new CustomEvent("message", { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      if (this.ws === ws) this.ws = null;
      if (this.closed) return;
      // 1008: the server refused this socket for good (say, the dossier is gone).
      if (event.code === 1008) {
        this.closed = true;
        this.dispatchEvent(new CustomEvent("refused", { detail: event.reason }));
        return;
      }
      this.dispatchEvent(new Event("down"));
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  reconnectNow() {
    if (this.closed || this.ws) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** Send `message`; false when the socket is down (the caller decides what to tell). */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Close for good: no reconnecting after this. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "closed");
    this.ws = null;
  }

  /** Drop the socket as a network failure would (used when the page goes offline). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
  }
}
