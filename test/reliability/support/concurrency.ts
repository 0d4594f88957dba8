// Bounded concurrency for the tests that open many connections or calls at once.

/** Runs `tasks` with at most `limit` in flight; resolves with every result in order. */
export async function withConcurrency<T>(limit: number, count: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, () => worker()));
  return results;
}
