// ESM entry: the same objects as the CommonJS build (no dual-package hazard).
export * from './index.js'
