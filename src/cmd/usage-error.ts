// A command line the programs cannot act on (unknown or repeated option, missing or malformed value): exit code 2,
// as opposed to a failure of the work itself (exit 1).

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
