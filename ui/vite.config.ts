import { defineConfig } from "vitest/config";

// The Tauri app (src-tauri/) embeds dist/ and, in development, loads the dev server below.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    // WebKitGTK 2.50 on Debian 12 is the oldest engine that runs the app.
    target: "safari16",
    outDir: "dist",
    emptyOutDir: true,
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts"],
  },
});
