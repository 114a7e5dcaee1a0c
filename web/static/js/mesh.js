// The peer connections of one call: a mesh of at most three (clerk, resident, interpreter).
//
// Who offers is fixed by role, so that two pages never start at once: the resident offers to
// the clerk, the interpreter to both. Later renegotiations (sound-only mode, ICE restarts) may
// come from either side; collisions are settled as in the "perfect negotiation" pattern, the
// clerk's side being the polite one that rolls back.

const RANK = { clerk: 0, resident: 1, guest: 2 };
const RESTART_AFTER_DISCONNECT_MS = 3000;
const OFFER_RETRY_MS = 5000;

function fingerprint(sdp) {
  const match = /a=fingerprint:\S+ (\S+)/.exec(sdp || "");
  return match ? match[1] : null;
}

export class Mesh {
  constructor({ role, signaling, onRemoteStream, onPeerClosed }) {
    this.role = role;
    this.signaling = signaling;
    this.onRemoteStream = onRemoteStream;
    this.onPeerClosed = onPeerClosed;
    this.iceServers = [];
    this.stream = null;
    this.audioOnly = false;
    this.peers = new Map();
    this.queue = Promise.resolve();
  }

  /** Do I make the first offer to a participant in `role`? */
  offersTo(role) {
    return RANK[this.role] > RANK[role];
  }

  /** Start a connection to `id`, or restart ICE on the one there is (after a reconnect). */
  async connect(id, role) {
    const peer = this.peers.get(id);
    if (!peer) {
      this.watch(this.create(id, role, true));
      return;
    }
    if (peer.pc.signalingState === "have-local-offer") {
      // An offer that went out while the other side was away gets no answer: start over.
      await peer.pc.setLocalDescription({ type: "rollback" });
    }
    peer.pc.restartIce();
    this.watch(peer);
  }

  /** Offers can be lost (the other side reconnecting): try again until one is answered. */
  watch(peer) {
    clearTimeout(peer.watchdog);
    peer.watchdog = setTimeout(() => {
      if (this.peers.get(peer.id) === peer && peer.pc.signalingState === "have-local-offer") {
        this.connect(peer.id, peer.role);
      }
    }, OFFER_RETRY_MS);
  }

  create(id, role, offerer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const peer = {
      id, role, pc, fingerprint: null, candidates: [], watchdog: null,
      makingOffer: false, ignoreOffer: false, polite: RANK[this.role] < RANK[role],
    };
    this.peers.set(id, peer);
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate) this.signaling.send({ type: "ice", to: id, candidate: candidate.toJSON() });
    });
    pc.addEventListener("negotiationneeded", async () => {
      try {
        peer.makingOffer = true;
        await pc.setLocalDescription();
        this.signaling.send({ type: "offer", to: id, sdp: pc.localDescription.sdp });
      } catch (error) {
        console.warn("offer failed", error);
      } finally {
        peer.makingOffer = false;
      }
    });
    const remote = new MediaStream();
    pc.addEventListener("track", ({ track }) => {
      remote.addTrack(track);
      this.onRemoteStream(id, role, remote);
    });
    let disconnectedTimer = null;
    pc.addEventListener("iceconnectionstatechange", () => {
      clearTimeout(disconnectedTimer);
      const state = pc.iceConnectionState;
      if (state === "failed") pc.restartIce();
      if (state === "disconnected") {
        disconnectedTimer = setTimeout(() => {
          if (pc.iceConnectionState === "disconnected") pc.restartIce();
        }, RESTART_AFTER_DISCONNECT_MS);
      }
    });
    if (offerer) {
      // The tracks (or receive-only slots when there is no camera) make the first offer.
      const audio = this.stream ? this.stream.getAudioTracks()[0] : null;
      const video = this.stream && !this.audioOnly ? this.stream.getVideoTracks()[0] : null;
      if (audio) pc.addTrack(audio, this.stream);
      else pc.addTransceiver("audio", { direction: "recvonly" });
      if (video) pc.addTrack(video, this.stream);
      else pc.addTransceiver("video", { direction: this.audioOnly ? "inactive" : "recvonly" });
    }
    return peer;
  }

  /** Handle an offer, answer or ICE message from another participant, one at a time. */
  handle(message, roleOf) {
    this.queue = this.queue.then(() => this.handleNow(message, roleOf)).catch((error) => {
      console.warn("signaling message failed", message.type, error);
    });
    return this.queue;
  }

  async handleNow(message, roleOf) {
    const from = message.from;
    if (message.type === "ice") {
      const peer = this.peers.get(from);
      if (!peer || !message.candidate) return;
      if (!peer.pc.remoteDescription) {
        peer.candidates.push(message.candidate);
        return;
      }
      try {
        await peer.pc.addIceCandidate(message.candidate);
      } catch (error) {
        if (!peer.ignoreOffer) throw error;
      }
      return;
    }
    const description = { type: message.type, sdp: message.sdp };
    let peer = this.peers.get(from);
    const print = fingerprint(description.sdp);
    if (peer && peer.fingerprint && print && print !== peer.fingerprint) {
      // The other page was reloaded: a new peer, not a renegotiation of the old one.
      this.close(from);
      if (description.type === "answer") {
        this.create(from, peer.role, true);
        return;
      }
      peer = null;
    }
    if (!peer) {
      if (description.type !== "offer") return;
      peer = this.create(from, roleOf(from), false);
    }
    const pc = peer.pc;
    const collision =
      description.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) return;
    await pc.setRemoteDescription(description);
    peer.fingerprint = print || peer.fingerprint;
    for (const candidate of peer.candidates.splice(0)) {
      await pc.addIceCandidate(candidate).catch(() => {});
    }
    if (description.type === "offer") {
      this.attachTracks(pc);
      await pc.setLocalDescription();
      this.signaling.send({ type: "answer", to: from, sdp: pc.localDescription.sdp });
    }
  }

  /** On the answering side: send our tracks on the slots the offer made. */
  attachTracks(pc) {
    if (!this.stream) return;
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      if (transceiver.sender.track || transceiver.currentDirection === "stopped") continue;
      if (kind === "video" && this.audioOnly) continue;
      const track = kind === "audio" ? this.stream.getAudioTracks()[0] : this.stream.getVideoTracks()[0];
      if (!track) continue;
      transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams(this.stream);
      transceiver.direction = "sendrecv";
    }
  }

  /** New local media (another camera or microphone chosen): swap it in without renegotiating. */
  setStream(stream) {
    this.stream = stream;
    for (const { pc } of this.peers.values()) {
      for (const sender of pc.getSenders()) {
        if (!sender.track) continue;
        const kind = sender.track.kind;
        const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
        if (track) sender.replaceTrack(track);
      }
    }
  }

  /** Sound only: stop sending video and ask the others to stop sending theirs. */
  setAudioOnly(on, videoTrack) {
    this.audioOnly = on;
    for (const { pc } of this.peers.values()) {
      for (const transceiver of pc.getTransceivers()) {
        if (transceiver.receiver.track.kind !== "video" || transceiver.currentDirection === "stopped") continue;
        if (on) {
          transceiver.sender.replaceTrack(null);
          transceiver.direction = "inactive";
        } else {
          if (videoTrack) {
            transceiver.sender.replaceTrack(videoTrack);
            transceiver.sender.setStreams(this.stream);
          }
          transceiver.direction = videoTrack ? "sendrecv" : "recvonly";
        }
      }
    }
  }

  close(id) {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    clearTimeout(peer.watchdog);
    peer.pc.close();
    this.onPeerClosed(id);
  }

  closeAll() {
    for (const id of [...this.peers.keys()]) this.close(id);
  }

  /** Per participant: video frames decoded so far and the local ICE username fragment
   * (it changes with every ICE restart). From getStats, for diagnostics and the tests. */
  async stats() {
    const result = {};
    for (const [id, { pc }] of this.peers) {
      const entry = { framesDecoded: 0, iceUfrag: null };
      (await pc.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "video") {
          entry.framesDecoded += report.framesDecoded || 0;
        }
        if (report.type === "transport" && report.iceLocalUsernameFragment) {
          entry.iceUfrag = report.iceLocalUsernameFragment;
        }
      });
      result[id] = entry;
    }
    return result;
  }
}
