// Documents and payments in the call page (resident and clerk; never the interpreter):
// upload with progress (file picker or drag and drop), the list of shared documents with
// download links, payments requested by the clerk and their status, live over signaling.

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("balie-config").dataset.config);
const T = config.texts;
const lang = document.documentElement.lang;
const euro = new Intl.NumberFormat(lang, { style: "currency", currency: "EUR" });

function say(text) {
  $("status").textContent = text;
}

function roleName(role) {
  return T[`role.${role}`] || role;
}

function humanSize(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} kB`;
  return `${(bytes / (1024 * 1024)).toLocaleString(lang, { maximumFractionDigits: 1 })} MB`;
}

// ---- documents

function addDocument(doc, announce) {
  if ($(`document-${doc.id}`)) return;
  const item = document.createElement("li");
  item.id = `document-${doc.id}`;
  const link = document.createElement("a");
  link.className = "utrecht-link";
  link.href = doc.url;
  link.download = doc.name;
  link.textContent = doc.name;
  const detail = document.createElement("span");
  detail.textContent = ` (${humanSize(doc.size)}, ${T["docs.by"]} ${roleName(doc.from).toLowerCase()})`;
  item.append(link, detail);
  $("documenten").append(item);
  $("geen-documenten").hidden = true;
  if (announce) say(`${T["docs.new"]} ${doc.name}`);
}

function send(file) {
  if (file.size > config.max_document_bytes) {
    // Checked here as well, so a large file is not sent only to be refused.
    say(`${T["docs.failed"]} ${T["docs.too_large"]} ${humanSize(config.max_document_bytes)}`);
    return;
  }
  const progress = $("upload-voortgang");
  const data = new FormData();
  data.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", `/api/dossiers/${config.dossier}/documents`);
  request.setRequestHeader("X-CSRF-Token", config.csrf);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
  });
  request.addEventListener("loadend", () => {
    progress.hidden = true;
    let body = {};
    try {
      body = JSON.parse(request.responseText);
    } catch {
      body = { message: String(request.status || "") };
    }
    if (request.status === 201) {
      addDocument(body, false);
      say(T["docs.sent"]);
      $("upload-form").reset();
    } else {
      say(`${T["docs.failed"]} ${body.message || request.statusText}`);
    }
  });
  progress.value = 0;
  progress.hidden = false;
  request.send(data);
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("bestand").files[0];
  if (file) send(file);
});

const zone = $("documenten-vak");
zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  zone.classList.add("balie-dropzone--over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("balie-dropzone--over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("balie-dropzone--over");
  const file = event.dataTransfer.files[0];
  if (file) send(file);
});

// ---- payments

function showPayment(payment, announce) {
  let item = $(`betaling-${payment.id}`);
  const isNew = !item;
  if (isNew) {
    item = document.createElement("li");
    item.id = `betaling-${payment.id}`;
    $("betalingen").append(item);
  }
  const status = T[`pay.status.${payment.status}`] || payment.status;
  const text = document.createElement("span");
  text.textContent = `${payment.description}: ${euro.format(payment.amount_cents / 100)} (${status})`;
  item.replaceChildren(text);
  item.dataset.status = payment.status;
  const payable = payment.status === "open" || payment.status === "created";
  if (config.role === "resident" && payable && payment.checkout_url) {
    const link = document.createElement("a");
    link.className = "utrecht-button-link utrecht-button-link--primary-action";
    link.href = payment.checkout_url;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = T["pay.pay"];
    item.append(" ", link);
  }
  $("geen-betalingen").hidden = true;
  if (announce) {
    const prefix = isNew ? T["pay.requested"] : T["pay.changed"];
    say(`${prefix} ${payment.description}, ${status}`);
  }
}

function euroCents(text) {
  const match = /^\s*(\d+)(?:[,.](\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "0").padEnd(2, "0"));
}

const paymentForm = $("betaling-form");
if (paymentForm) {
  paymentForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fee = $("leges").value;
    let body;
    if (fee) {
      body = { fee_code: fee };
    } else {
      const cents = euroCents($("bedrag").value);
      const description = $("omschrijving").value.trim();
      if (!cents || !description) {
        say(T["pay.amount_needed"]);
        return;
      }
      body = { amount_cents: cents, description };
    }
    const response = await fetch(`/api/dossiers/${config.dossier}/payments`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": config.csrf },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      showPayment(answer, false);
      paymentForm.reset();
    } else {
      say(`${T["pay.failed"]} ${answer.message || response.status}`);
    }
  });
}

document.addEventListener("balie:notice", ({ detail }) => {
  if (detail.type === "document") addDocument(detail, true);
  if (detail.type === "payment") showPayment(detail, true);
});

for (const doc of config.documents || []) addDocument(doc, false);
for (const payment of config.payments || []) showPayment(payment, false);
