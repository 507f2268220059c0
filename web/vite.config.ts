// Vite build of the cts-seg browser demo: a static page whose onnxruntime-web wasm binaries are
// emitted assets (imported with ?url in src/main.ts), so nothing is fetched from outside at build or
// run time. Relative asset paths let any static server host web/dist at any path.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  resolve: {
    // the page is a client of the library's browser entry; its sources, not dist/, so no build of the
    // library is needed first (and the package's own `exports` are not required to resolve it)
    alias: { 'cts-seg/web': fileURLToPath(new URL('../src/web/index.ts', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // the ORT bundle is one large module by design; the warning is not actionable here
    chunkSizeWarningLimit: 2048,
  },
  // the `worker: true` worker loads onnxruntime-web with a dynamic import, which needs code splitting
  worker: { format: 'es' },
  // pre-bundling would copy ORT without its wasm; serve it as the package ships it
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  server: { host: '127.0.0.1', port: 5173, strictPort: false },
  preview: { host: '127.0.0.1', port: 4173, strictPort: false },
});
