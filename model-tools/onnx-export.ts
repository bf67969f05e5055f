/**
 * TF.js layers model → ONNX: the public face of the export pipeline in ./onnx/ (see export.ts
 * there for the passes), kept under its old name so that callers need not know the layout.
 */
export { buildOnnxGraph, ensureOnnxModel, exportOnnx, onnxIsCurrent } from './onnx/export.ts';
export type { OnnxExportResult } from './onnx/export.ts';
export { ONNX_IR_VERSION, ONNX_OPSET } from './onnx/layers-to-graph.ts';
export type { BuildOptions } from './onnx/layers-to-graph.ts';
export { OnnxExportError } from './onnx/keras-graph.ts';
