// Plain JavaScript: Node preloads it before tsx is registered.
/**
 * Preloaded into a real hub process by the last-resort test (`node --import` this file): on
 * SIGUSR2 it raises, from a timer outside any handler, an uncaught exception or (with
 * HUB_TEST_FAULT=reject) an unhandled rejection: the escapes the hub's last resort must catch.
 * Nothing of the hub is replaced; the fault is real.
 */
process.on('SIGUSR2', () => {
  setTimeout(() => {
    if (process.env.HUB_TEST_FAULT === 'reject') void Promise.reject(new Error('injected unhandled rejection (test)'));
    else throw new Error('injected uncaught exception (test)');
  }, 0);
});
