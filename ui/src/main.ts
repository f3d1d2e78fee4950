import "./styles.css";
import { tauriApi } from "./api";
import { mountApp } from "./views/app";

const root = document.querySelector<HTMLElement>("#app");
if (root) {
  mountApp(root, tauriApi, document);
}
