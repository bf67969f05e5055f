/**
 * The layering rules: imports only go down. `npm run check:layers` (part of `npm test`) fails on
 * any import against the grain. From the top:
 *
 *   test/ → bench/ → kit/                   what runs the product from outside
 *   server/ (composition root, cli/)        main, start-hub, shutdown, config, model-bootstrap
 *     observability/ → model-swap/ → volunteers/ → front/ → hub/ → scheduler/ → executors/ → engines/ → preprocess/
 *   model-tools/                            the CLIs that write the store (generate, fetch, import, export, quantize)
 *   model-store/                            the store the hub stands on: manifest, weights, derived files
 *   lib/                                    Node helpers with no product knowledge
 *   shared/                                 what the server and the browser share; imports nothing of ours
 *
 * Beside them: client/ (over shared/ only) and web/ (over shared/ only).
 */
const SERVER_LAYERS = ['observability', 'model-swap', 'volunteers', 'front', 'hub', 'scheduler', 'executors', 'engines', 'preprocess'];

/** A server subsystem imports none above it, and never the composition root (server/*.ts, cli/). */
const serverLayerRules = SERVER_LAYERS.map((layer, index) => ({
  name: `server-${layer}-imports-down`,
  comment: `server/${layer}/ may import only the server subsystems below it (${SERVER_LAYERS.slice(index + 1).join(', ') || 'none'})`,
  severity: 'error',
  from: { path: `^server/${layer}/` },
  to: {
    path: `^server/(${[...SERVER_LAYERS.slice(0, index + 1).filter((l) => l !== layer), 'cli'].join('|')})/|^server/[^/]+\\.ts$`,
  },
}));

/** `from` may import nothing of ours but `allowed` (folders at the repo root). */
const onlyImports = (name, from, allowed, comment) => ({
  name,
  comment,
  severity: 'error',
  from: { path: `^${from}/` },
  to: { path: '^(shared|lib|model-store|model-tools|server|client|web|kit|bench|test|scripts)/', pathNot: `^(${allowed.join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A circle of imports has no layer order; break it with an interface in the lower module.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    onlyImports('shared-imports-nothing-of-ours', 'shared', ['shared'], 'shared/ is read by the browser too: it imports nothing of the server, lib or tools'),
    onlyImports('lib-knows-no-product', 'lib', ['lib'], 'lib/ holds helpers with no product knowledge: it imports nothing of ours'),
    onlyImports('model-store-below-everything-but-lib', 'model-store', ['model-store', 'lib', 'shared'], 'the model layer stands on lib/ and shared/ alone'),
    onlyImports('model-tools-below-the-server', 'model-tools', ['model-tools', 'model-store', 'lib', 'shared'], 'the model tools work over the model layer and never reach into the server'),
    onlyImports('client-over-shared', 'client', ['client', 'shared'], 'the client libraries ship on their own: shared/ protocol types only'),
    onlyImports('web-over-shared', 'web', ['web', 'shared'], 'the browser app shares only shared/ with the hub'),
    onlyImports('kit-below-bench-and-test', 'kit', ['kit', 'server', 'client', 'model-tools', 'model-store', 'lib', 'shared'], 'kit/ serves bench/ and test/ and imports neither'),
    onlyImports('bench-never-imports-test', 'bench', ['bench', 'kit', 'server', 'client', 'model-tools', 'model-store', 'lib', 'shared'], 'bench/ and test/ share kit/, not each other'),
    {
      name: 'server-uses-model-tools-only-to-bootstrap',
      comment: 'the hub reads the store through model-store/; only model-bootstrap.ts runs the tools (fetch, generate, export, quantize) at start',
      severity: 'error',
      from: { path: '^server/', pathNot: '^server/model-bootstrap\\.ts$' },
      to: { path: '^model-tools/' },
    },
    {
      name: 'server-not-over-bench-kit-test-web',
      comment: 'the product never imports what tests, benchmarks or the browser app are made of',
      severity: 'error',
      from: { path: '^server/' },
      to: { path: '^(bench|kit|test|web)/' },
    },
    {
      name: 'only-the-cli-uses-the-client-library',
      comment: 'inside the server, only cli/ (npm run classify) speaks to hubs as a client',
      severity: 'error',
      from: { path: '^server/', pathNot: '^server/cli/' },
      to: { path: '^client/' },
    },
    ...serverLayerRules,
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve is a broken build',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|\\.dist-tmp-[^/]*)/' },
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'], conditionNames: ['import', 'require', 'node', 'default'], exportsFields: ['exports'] },
  },
};
