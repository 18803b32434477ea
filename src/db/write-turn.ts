/**
 * Whose turn it is to write to the SQLite file, between the event loop's connection and the maintenance thread's.
 * SQLite lets one connection write at a time and makes the other wait in a sleeping busy handler, which on the event
 * loop's thread would stall every request. With this turn the event loop never waits: when the maintenance thread
 * holds it, the group commit is put off until the thread hands it back (`onFree`); the thread, which may block,
 * waits with `Atomics.wait`.
 */
export class WriteTurn {
  /** [holder: 0 nobody, 1 the event loop, 2 the maintenance thread; 1 while the event loop waits for its turn]. */
  private readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.cells = new Int32Array(buffer);
  }

  /** The event loop's try: true when it holds the turn now; false when it must wait for `handBack` to tell it. */
  tryTake(): boolean {
    // Waiting is announced before the try, so that a hand-back between the two still tells the event loop.
    Atomics.store(this.cells, 1, 1);
    if (Atomics.compareExchange(this.cells, 0, 0, 1) !== 0) return false;
    Atomics.store(this.cells, 1, 0);
    return true;
  }

  release(): void {
    Atomics.store(this.cells, 0, 0);
    Atomics.notify(this.cells, 0);
  }

  /** The maintenance thread's take: blocks its own thread until the event loop's commit is over. */
  take(): void {
    while (Atomics.compareExchange(this.cells, 0, 0, 2) !== 0) Atomics.wait(this.cells, 0, 1, 50);
  }

  /** For a maintenance thread that died: the turn it may have held is free again. */
  reclaimFromThread(): void {
    Atomics.compareExchange(this.cells, 0, 2, 0);
  }

  /** The maintenance thread's release: true when the event loop was waiting and must be told. */
  handBack(): boolean {
    Atomics.store(this.cells, 0, 0);
    return Atomics.exchange(this.cells, 1, 0) === 1;
  }
}
