// Camera and microphone: choosing them, seeing yourself, and the server echo test.

const ECHO_SECONDS = 60;
const GATHER_TIMEOUT_MS = 3000;

export class Devices {
  constructor({ cameraSelect, microphoneSelect, previews, onChange }) {
    this.cameraSelect = cameraSelect;
    this.microphoneSelect = microphoneSelect;
    this.previews = previews;
    this.onChange = onChange;
    this.stream = null;
    cameraSelect.addEventListener("change", () => this.start());
    microphoneSelect.addEventListener("change", () => this.start());
  }

  /** Open the chosen (or default) camera and microphone; falls back to sound only. */
  async start() {
    const camera = this.cameraSelect.value;
    const microphone = this.microphoneSelect.value;
    const audio = microphone ? { deviceId: { exact: microphone } } : true;
    const video = camera
      ? { deviceId: { exact: camera }, width: { ideal: 640 }, height: { ideal: 480 } }
      : { width: { ideal: 640 }, height: { ideal: 480 } };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio, video });
    } catch (error) {
      // No camera, or the camera is refused: the call can still go on with sound.
      stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    }
    this.stopTracks();
    this.stream = stream;
    for (const preview of this.previews) preview.srcObject = stream;
    await this.fillChoices();
    this.onChange(stream);
    return stream;
  }

  async fillChoices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const current = (kind) => {
      const track = kind === "videoinput" ? this.videoTrack : this.audioTrack;
      return track ? track.getSettings().deviceId : "";
    };
    for (const [select, kind] of [
      [this.cameraSelect, "videoinput"],
      [this.microphoneSelect, "audioinput"],
    ]) {
      const chosen = current(kind);
      select.replaceChildren();
      let number = 0;
      for (const device of devices.filter((d) => d.kind === kind)) {
        number += 1;
        const option = new Option(device.label || `${select.labels[0].textContent} ${number}`, device.deviceId);
        option.selected = device.deviceId === chosen;
        select.append(option);
      }
      select.disabled = select.options.length === 0;
    }
  }

  get audioTrack() {
    return this.stream ? this.stream.getAudioTracks()[0] || null : null;
  }

  get videoTrack() {
    return this.stream ? this.stream.getVideoTracks()[0] || null : null;
  }

  /** A fresh camera track (after sound-only mode stopped the old one), or null. */
  async reopenCamera() {
    const camera = this.cameraSelect.value;
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({
        video: camera ? { deviceId: { exact: camera } } : true,
      });
      const track = fresh.getVideoTracks()[0];
      if (this.stream) this.stream.addTrack(track);
      return track;
    } catch {
      return null;
    }
  }

  /** Stop the camera (the light goes off) but keep the microphone. */
  stopCamera() {
    const track = this.videoTrack;
    if (track) {
      track.stop();
      this.stream.removeTrack(track);
    }
  }

  stopTracks() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
  }
}

/** The pre-call check: one peer connection to the server's echo peer, at most a minute. */
export class EchoTest {
  constructor({ stunUrls, csrfToken, video }) {
    this.stunUrls = stunUrls;
    this.csrfToken = csrfToken;
    this.video = video;
    this.pc = null;
    this.timer = null;
    this.onStop = () => {};
  }

  get running() {
    return this.pc !== null;
  }

  /** Returns "running", "busy" or "failed". */
  async start(stream) {
    this.stop();
    const pc = new RTCPeerConnection({
      iceServers: this.stunUrls.length ? [{ urls: this.stunUrls }] : [],
    });
    this.pc = pc;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    const echoed = new MediaStream();
    pc.addEventListener("track", ({ track }) => {
      echoed.addTrack(track);
      this.video.srcObject = echoed;
    });
    await pc.setLocalDescription(await pc.createOffer());
    // The echo peer takes one offer with every candidate in it: no trickling over a socket.
    await gatheringComplete(pc);
    let response;
    try {
      response = await fetch("/api/precall/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrfToken },
        body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
      });
    } catch {
      this.stop();
      return "failed";
    }
    if (!response.ok) {
      this.stop();
      return response.status === 429 ? "busy" : "failed";
    }
    await pc.setRemoteDescription(await response.json());
    this.timer = setTimeout(() => this.stop(), ECHO_SECONDS * 1000);
    return "running";
  }

  stop() {
    clearTimeout(this.timer);
    if (this.pc) {
      this.pc.close();
      this.pc = null;
      this.video.srcObject = null;
      this.onStop();
    }
  }
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS); // enough candidates by now; send what we have
  });
}
