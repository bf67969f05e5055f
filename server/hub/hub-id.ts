/**
 * The hub's name in replies, `/api/status`, the ready line and metrics: `--hub-id`, or
 * `<hostname>:<zmq port>`, which is unique per pod in Kubernetes (the hostname is the pod's
 * name) and per port on one machine.
 */
import { hostname } from 'node:os';

/** `tcp://*:5576` → `<hostname>:5576`; an endpoint with no port (ipc://, inproc://) is used whole. */
export function defaultHubId(zmqEndpoint: string, host: string = hostname()): string {
  const port = /^tcp:\/\/.*:(\d+|\*)$/.exec(zmqEndpoint)?.[1];
  return `${host}:${port ?? zmqEndpoint}`;
}
