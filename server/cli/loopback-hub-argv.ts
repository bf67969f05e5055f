/**
 * The node arguments that run the hub pinned to loopback on free ports, for the tools that
 * spawn it as a child process (the tests, the benchmark). Flags appended later win.
 */
export const LOOPBACK_HUB_ARGV: readonly string[] = [
  '--import',
  'tsx',
  'server/main.ts',
  '--zmq',
  'tcp://127.0.0.1:*',
  '--http-port',
  '0',
  '--http-host',
  '127.0.0.1',
  '--grpc-port',
  '0',
];
