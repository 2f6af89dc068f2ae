/** Signal handlers by key (a channel, a line), as both signal transports keep them. */
export class Handlers<M> {
  private readonly byKey = new Map<string, Set<(message: M) => void>>();

  /** Adds `handler` for `key`; the result removes it, and says whether it was the key's last. */
  add(key: string, handler: (message: M) => void): () => boolean {
    let set = this.byKey.get(key);
    if (!set) this.byKey.set(key, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size > 0 || this.byKey.get(key) !== set) return false;
      this.byKey.delete(key);
      return true;
    };
  }

  /** Calls the key's handlers, each in a microtask of its own. */
  dispatch(key: string, message: M): void {
    for (const handler of this.byKey.get(key) ?? []) queueMicrotask(() => handler(message));
  }
}
