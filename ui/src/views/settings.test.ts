import { beforeEach, describe, expect, it } from "vitest";
import type { SettingsView as Settings } from "../api";
import { $, fakeApi, settle } from "./fake-api";
import { mountSettings } from "./settings";

const settings: Settings = {
  library_dir: "/home/me/.local/share/memreader/library",
  library_error: null,
  library_is_default: true,
  settings_error: null,
  device: "auto",
  detected: { device: "cpu", notice: "no CUDA device (built without the `cuda` feature); running on the CPU", cuda_built: false },
};

beforeEach(() => document.body.replaceChildren());

describe("settings view", () => {
  it("shows the library, the device chosen and what was detected", async () => {
    const view = mountSettings(document, fakeApi({ settings: () => Promise.resolve(settings) }), () => {});
    document.body.append(view.element);
    await view.load();
    expect($("#settings-library").textContent).toBe("/home/me/.local/share/memreader/library");
    expect(($("#default-library") as HTMLButtonElement).disabled).toBe(true);
    expect(($("#settings-device") as HTMLSelectElement).value).toBe("auto");
    expect($("#settings-detected").textContent).toBe(
      "Detected: no GPU in use (no CUDA device (built without the `cuda` feature); running on the CPU). This build runs on the CPU only; see the README to build with CUDA.",
    );
  });

  it("saves a device, and shows a GPU that auto found", async () => {
    const api = fakeApi({
      settings: () => Promise.resolve(settings),
      setDevice: (device) =>
        Promise.resolve({ ...settings, device, detected: { device: "cuda:0", notice: null, cuda_built: true } }),
    });
    const view = mountSettings(document, api, () => {});
    document.body.append(view.element);
    await view.load();
    const select = $("#settings-device") as HTMLSelectElement;
    select.value = "cpu";
    select.dispatchEvent(new Event("change"));
    await settle();
    expect(api.calls.find(([name]) => name === "setDevice")).toEqual(["setDevice", ["cpu"]]);
    expect(select.value).toBe("cpu");
    expect($("#settings-detected").textContent).toBe("Detected: GPU cuda:0.");
  });

  it("moves the library to a chosen folder and tells the app; a cancelled picker changes nothing", async () => {
    let moved = 0;
    let answer: Settings | null = null;
    const api = fakeApi({ settings: () => Promise.resolve(settings), chooseLibrary: () => Promise.resolve(answer) });
    const view = mountSettings(document, api, () => moved++);
    document.body.append(view.element);
    await view.load();
    $("#choose-library").click();
    await settle();
    expect(moved).toBe(0);
    answer = { ...settings, library_dir: "/data/books", library_is_default: false };
    $("#choose-library").click();
    await settle();
    expect(api.calls.at(-1)).toEqual(["chooseLibrary", [false]]);
    expect(moved).toBe(1);
    expect($("#settings-library").textContent).toBe("/data/books");
    expect($("#settings-library-kind").textContent).toBe("(chosen)");
    expect(($("#default-library") as HTMLButtonElement).disabled).toBe(false);
  });

  it("shows the errors of the library, the settings file and the commands", async () => {
    const api = fakeApi({
      settings: () =>
        Promise.resolve({
          ...settings,
          library_error: "The library at /x cannot be opened: permission denied",
          settings_error: "/cfg/settings.json: not a settings file: EOF",
        }),
      setDevice: () => Promise.reject('unknown device "gpu": expected auto, cpu, cuda or cuda:N'),
    });
    const view = mountSettings(document, api, () => {});
    document.body.append(view.element);
    await view.load();
    expect($("#settings-library-error").textContent).toBe("The library at /x cannot be opened: permission denied");
    expect($("#settings-error").textContent).toBe(
      "The settings file could not be read; the defaults are in use. /cfg/settings.json: not a settings file: EOF",
    );
    $("#settings-device").dispatchEvent(new Event("change"));
    await settle();
    expect($("#settings-error").textContent).toBe('unknown device "gpu": expected auto, cpu, cuda or cuda:N');
  });
});
