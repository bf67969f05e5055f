/**
 * `npm run keys`: a new ZeroMQ CURVE key pair (Z85), and which half goes where.
 */
import { Command } from 'commander';
import * as zmq from 'zeromq';

const program = new Command('keys')
  .description('print a new ZeroMQ CURVE key pair (Z85) for the hub or for a client')
  .option('--json', 'print {"public_key", "secret_key"} as one JSON line')
  .parse();

const options = program.opts<{ json?: boolean }>();
const { publicKey, secretKey } = zmq.curveKeyPair();

if (options.json) {
  console.log(JSON.stringify({ public_key: publicKey, secret_key: secretKey }));
} else {
  console.log(`A new CURVE key pair (Z85):

  public key: ${publicKey}
  secret key: ${secretKey}

For the hub:   start it with --curve-secret-key '${secretKey}'
               (or HUB_CURVE_SECRET_KEY), and give its public key to the clients as their
               server key (pyzmq curve_serverkey, zeromq.js curveServerKey); the hub logs it
               at start (curve_public_key).
For a client:  set this pair as the client's own keys (pyzmq curve_publickey/curve_secretkey,
               zeromq.js curvePublicKey/curveSecretKey) and add its public key to the hub's
               --curve-clients (comma-separated, or @file with one key per line).

The secret key stays with its owner; only public keys are shared.`);
}
