// The clerk's export pages: start an export, then follow it until it is done or failed.

const form = document.getElementById("export-form");
const job = document.getElementById("export-job");
const status = document.getElementById("status");

async function answer(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || String(response.status));
  return body;
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { target: data.get("target") };
    if (data.get("zaak")) body.zaak = data.get("zaak").trim();
    try {
      const started = await answer(
        await fetch(`/api/dossiers/${form.dataset.dossier}/exports`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
          body: JSON.stringify(body),
        }),
      );
      location.assign(`/balie/export/${started.id}`);
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

if (job) {
  const texts = JSON.parse(job.dataset.texts);
  const id = job.dataset.export;
  const show = (info) => {
    job.dataset.state = info.state;
    document.getElementById("voortgang").value = info.progress;
    document.getElementById("voortgang-tekst").textContent = info.progress_text;
    status.textContent = texts[info.state] || info.state;
    const error = document.getElementById("fout");
    error.textContent = info.error || "";
    error.hidden = !info.error;
    const download = document.getElementById("download");
    if (info.download_url) download.href = info.download_url;
    download.hidden = !info.download_url;
    document.getElementById("opnieuw").hidden = info.state !== "failed";
  };
  const poll = async () => {
    try {
      const info = await answer(await fetch(`/api/exports/${id}`));
      show(info);
      if (info.state === "queued" || info.state === "running") setTimeout(poll, 1000);
    } catch (error) {
      status.textContent = error.message;
      setTimeout(poll, 3000);
    }
  };
  document.getElementById("opnieuw").addEventListener("click", async () => {
    try {
      show(
        await answer(
          await fetch(`/api/exports/${id}/retry`, {
            method: "POST",
            headers: { "X-CSRF-Token": job.dataset.csrf },
          }),
        ),
      );
      setTimeout(poll, 1000);
    } catch (error) {
      status.textContent = error.message;
    }
  });
  if (job.dataset.state === "queued" || job.dataset.state === "running") poll();
}
