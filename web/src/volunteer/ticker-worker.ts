/**
 * A metronome in a worker. Browsers throttle timers of background tabs (Chrome: to once a minute
 * after five minutes hidden), which would starve the volunteer's heartbeats; messages from a
 * dedicated worker still wake the page on time.
 */
let timer: ReturnType<typeof setInterval> | undefined;

self.addEventListener('message', (event: MessageEvent<{ intervalMs: number }>) => {
  if (timer !== undefined) clearInterval(timer);
  timer = setInterval(() => self.postMessage(Date.now(), { transfer: [] }), event.data.intervalMs);
});
