/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The desktop window loads the built files from disk through Tauri; the dev server is only
// for `tauri dev`. Tests run in jsdom with Tauri's IPC mocked.
export default defineConfig({
  plugins: [vue()],
  // Every component is written with <script setup>: Vue's options API and its development
  // aids are left out of the bundle.
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    target: 'es2021',
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.ts'],
  },
})
