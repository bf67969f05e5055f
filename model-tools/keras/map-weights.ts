/**
 * Decides where each of the file's weights goes in the model, and refuses the file if anything
 * does not fit: the naming (keras-applications or legacy) is detected from the layer names,
 * then every layer with weights must be in the file with exactly the expected weights, in
 * Keras' order, with the expected shapes and finite values; nothing may be left over.
 * Every problem is listed at once (naming the layer, expected vs found), so one run tells the
 * whole story. Pure: it neither builds the model nor writes anything.
 */
import { KerasImportError } from './errors.ts';
import type { KerasWeight } from './read-keras-h5.ts';

export type Naming = 'keras-applications' | 'legacy';

export interface ExpectedWeight {
  /** The weight's own name within its layer: kernel, bias, gamma, beta, moving_mean, moving_variance. */
  name: string;
  shape: number[];
}

/** A layer of the target model that has weights, with the shapes it expects. */
export interface ExpectedLayer {
  name: string;
  className: string;
  weights: ExpectedWeight[];
}

export interface LayerAssignment {
  /** The model's layer name (keras-applications naming). */
  layer: string;
  /** The name the file gave it. */
  fileLayer: string;
  /** In the model layer's weight order. */
  values: Float32Array[];
}

export interface WeightPlan {
  naming: Naming;
  assignments: LayerAssignment[];
}

/** Problems listed in the message; the rest are counted. */
const MAX_LISTED = 20;
/** Keras 2 weight names end in one of these (`conv1_conv/kernel:0`); Keras 1 names do not. */
const KNOWN_WEIGHT_NAMES = new Set(['kernel', 'bias', 'gamma', 'beta', 'moving_mean', 'moving_variance']);

/**
 * @param fileLayers the file's layers with weights (read-keras-h5)
 * @param expected the model's layers with weights, in model order
 * @param legacyNames keras-applications name → legacy name, for every expected layer
 * @param label what to call the file and model in messages, e.g. `x.h5` and `resnet50`
 */
export function planWeights(
  fileLayers: ReadonlyMap<string, KerasWeight[]>,
  expected: readonly ExpectedLayer[],
  legacyNames: ReadonlyMap<string, string>,
  label: { file: string; model: string },
): WeightPlan {
  const naming = detectNaming([...fileLayers.keys()], expected, legacyNames, label);
  const fileNameOf = (layer: string): string => {
    if (naming === 'keras-applications') return layer;
    const legacy = legacyNames.get(layer);
    if (!legacy) throw new Error(`no legacy name for layer ${layer}`);
    return legacy;
  };
  const display = (layer: string): string => (naming === 'legacy' ? `${fileNameOf(layer)} (${layer})` : layer);

  const problems: string[] = [];
  const assignments: LayerAssignment[] = [];
  const claimed = new Set<string>();
  for (const layer of expected) {
    const fileLayer = fileNameOf(layer.name);
    const found = fileLayers.get(fileLayer);
    if (!found) {
      problems.push(`missing layer ${display(layer.name)}: ${layer.className} with ${describeExpected(layer.weights)}`);
      continue;
    }
    claimed.add(fileLayer);
    const before = problems.length;
    checkLayer(display(layer.name), layer, found, problems);
    if (problems.length === before) assignments.push({ layer: layer.name, fileLayer, values: found.map((w) => w.values) });
  }
  for (const [fileLayer, weights] of fileLayers) {
    if (claimed.has(fileLayer)) continue;
    problems.push(`extra layer ${fileLayer} in the file (${weights.length} weight${weights.length === 1 ? '' : 's'}: ${weights.map((w) => `${w.name} [${w.shape.join(', ')}]`).join(', ')}): ${label.model} has no such layer`);
  }

  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED).map((p) => `  - ${p}`);
    if (problems.length > MAX_LISTED) listed.push(`  … and ${problems.length - MAX_LISTED} more`);
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    throw new KerasImportError(`${label.file} does not fit the ${label.model} model (${naming} layer names), ${count}:\n${listed.join('\n')}`);
  }
  return { naming, assignments };
}

/**
 * The naming most of the file's layers follow. The two namings share no layer name, so a file
 * of one naming scores zero on the other; a mixed file is judged by its majority, and the
 * minority then shows up as extra layers.
 */
export function detectNaming(
  fileLayers: readonly string[],
  expected: readonly ExpectedLayer[],
  legacyNames: ReadonlyMap<string, string>,
  label: { file: string; model: string },
): Naming {
  const current = new Set(expected.map((l) => l.name));
  const legacy = new Set(legacyNames.values());
  const currentHits = fileLayers.filter((n) => current.has(n)).length;
  const legacyHits = fileLayers.filter((n) => legacy.has(n)).length;
  if (currentHits === 0 && legacyHits === 0) {
    const sample = fileLayers.slice(0, 6).join(', ') || 'none';
    throw new KerasImportError(
      `${label.file}: none of its ${fileLayers.length} layers with weights is a ${label.model} layer, in either the keras-applications naming (conv1_conv, conv2_block1_1_conv, …, predictions) or the legacy one (conv1, res2a_branch2a, …, fc1000); its layers: ${sample}${fileLayers.length > 6 ? ', …' : ''}`,
    );
  }
  return legacyHits > currentHits ? 'legacy' : 'keras-applications';
}

function checkLayer(display: string, layer: ExpectedLayer, found: KerasWeight[], problems: string[]): void {
  if (found.length !== layer.weights.length) {
    problems.push(
      `layer ${display}: expected ${layer.weights.length} weights (${layer.weights.map((w) => w.name).join(', ')}), found ${found.length} (${found.map((w) => w.name).join(', ')})`,
    );
    return;
  }
  layer.weights.forEach((want, i) => {
    const got = found[i];
    const own = ownWeightName(got.name);
    if (own !== null && KNOWN_WEIGHT_NAMES.has(own) && own !== want.name) {
      problems.push(`layer ${display}: weight ${i + 1} should be ${want.name}, the file has ${got.name} there`);
      return;
    }
    if (!sameShape(want.shape, got.shape)) {
      problems.push(`layer ${display}: ${want.name} (${got.name}) has shape [${got.shape.join(', ')}], expected [${want.shape.join(', ')}]`);
      return;
    }
    const bad = got.values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) problems.push(`layer ${display}: ${want.name} (${got.name}) holds a non-finite value (${got.values[bad]}) at index ${bad}`);
  });
}

/** `conv1_conv/kernel:0` → `kernel`; `resnet50/conv1_conv/bias:0` → `bias`. */
function ownWeightName(fileName: string): string | null {
  const last = fileName.split('/').at(-1);
  return last ? last.replace(/:\d+$/, '') : null;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function describeExpected(weights: readonly ExpectedWeight[]): string {
  return weights.map((w) => `${w.name} [${w.shape.join(', ')}]`).join(', ');
}
