import "./styles.css";
import { tauriApi } from "./api";
import { mountHome } from "./views/home";

const root = document.querySelector<HTMLElement>("#app");
if (root) {
  mountHome(root, tauriApi, document);
}
