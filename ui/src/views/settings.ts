// Settings: where the library is (chosen with the native folder picker) and which device the
// model runs on, with what this machine has.
import type { Api, SettingsView as Settings } from "../api";
import { h } from "../dom";
import { errorMessage } from "../format";

export interface SettingsView {
  element: HTMLElement;
  /** Fetches and shows the settings. */
  load(): Promise<void>;
  focus(): void;
}

const DEVICES: Array<[string, string]> = [
  ["auto", "Automatic: the GPU if there is one, else the CPU"],
  ["cpu", "CPU"],
  ["cuda:0", "NVIDIA GPU (cuda:0)"],
];

export function mountSettings(doc: Document, api: Api, libraryMoved: () => void): SettingsView {
  const dir = h(doc, "code", { id: "settings-library" }, "…");
  const which = h(doc, "span", { id: "settings-library-kind", class: "muted" });
  const libraryError = h(doc, "p", { id: "settings-library-error", class: "error", role: "alert", hidden: true });
  const choose = h(doc, "button", { type: "button", id: "choose-library", class: "secondary" }, "Choose folder…");
  const reset = h(doc, "button", { type: "button", id: "default-library", class: "secondary" }, "Use the default");
  const device = h(doc, "select", { id: "settings-device", "aria-describedby": "settings-detected" });
  const detected = h(doc, "p", { id: "settings-detected", class: "muted" });
  const error = h(doc, "p", { id: "settings-error", class: "error", role: "alert", hidden: true });
  const model = h(doc, "p", { id: "settings-model" }, "…");
  const modelError = h(doc, "p", { id: "settings-model-error", class: "error", hidden: true });
  const element = h(
    doc,
    "section",
    { id: "view-settings", class: "view", "aria-labelledby": "settings-heading" },
    h(doc, "h2", { id: "settings-heading" }, "Settings"),
    error,
    h(
      doc,
      "fieldset",
      {},
      h(doc, "legend", {}, "Library location"),
      h(doc, "p", {}, dir, " ", which),
      libraryError,
      h(doc, "div", { class: "actions" }, choose, reset),
    ),
    h(
      doc,
      "fieldset",
      {},
      h(doc, "legend", {}, "Device"),
      h(doc, "label", { for: "settings-device" }, "Run the model on "),
      device,
      detected,
    ),
    h(doc, "fieldset", {}, h(doc, "legend", {}, "Model in use"), model, modelError),
  );

  function show(s: Settings): void {
    dir.textContent = s.library_dir ?? "(none)";
    which.textContent = s.library_is_default ? "(the default: $MEMREADER_HOME, else the data folder)" : "(chosen)";
    reset.disabled = s.library_is_default;
    libraryError.textContent = s.library_error ?? "";
    libraryError.hidden = s.library_error === null;
    const options = [...DEVICES];
    if (!options.some(([value]) => value === s.device)) options.push([s.device, s.device]);
    device.replaceChildren(...options.map(([value, label]) => h(doc, "option", { value }, label)));
    device.value = s.device;
    const found = s.detected.device === "cpu" ? "no GPU in use" : `GPU ${s.detected.device}`;
    detected.textContent = `Detected: ${found}${s.detected.notice ? ` (${s.detected.notice})` : ""}.${
      s.detected.cuda_built ? "" : " This build runs on the CPU only; see the README to build with CUDA."
    }`;
    if (s.settings_error) fail(`The settings file could not be read; the defaults are in use. ${s.settings_error}`);
  }

  function fail(message: string | null): void {
    error.textContent = message ?? "";
    error.hidden = message === null;
  }

  async function run(work: () => Promise<Settings | null>): Promise<void> {
    fail(null);
    try {
      const s = await work();
      if (s) show(s);
    } catch (err) {
      fail(errorMessage(err));
    }
  }

  choose.addEventListener("click", () =>
    void run(async () => {
      const s = await api.chooseLibrary(false);
      if (s) libraryMoved();
      return s;
    }),
  );
  reset.addEventListener("click", () =>
    void run(async () => {
      const s = await api.chooseLibrary(true);
      libraryMoved();
      return s;
    }),
  );
  device.addEventListener("change", () =>
    void run(() => api.setDevice(device.value)).then(loadModel),
  );

  async function loadModel(): Promise<void> {
    model.textContent = "Loading the model…";
    modelError.hidden = true;
    try {
      const m = await api.modelInfo();
      if (m.error !== null) {
        model.textContent = `No model in use (looked in ${m.dir}): questions are answered by search alone, and reading, notes and snapshots need one.`;
        modelError.textContent = m.error;
        modelError.hidden = false;
      } else {
        model.textContent = `${m.dir}: ${m.layers} layers, width ${m.d_model}, ${m.pool_slots} note slots per layer, vocabulary ${m.vocab_size}; weights ${m.weights_blake3?.slice(0, 12)}…; on ${m.device === "cpu" ? "the CPU" : "the GPU"}.`;
      }
    } catch (err) {
      model.textContent = "The model could not be described.";
      modelError.textContent = errorMessage(err);
      modelError.hidden = false;
    }
  }

  return {
    element,
    load: async () => {
      await run(() => api.settings());
      await loadModel();
    },
    focus: () => choose.focus(),
  };
}
