// How big the reliability runs are: `npm run test:reliability` sets RELIABILITY_SCALE=full (the counts of SPEC §13
// and the issue); `npm test` leaves it unset and gets the short run, which keeps the same checks at smaller counts.

export const FULL = process.env.RELIABILITY_SCALE === 'full';
export const SCALE_NAME = FULL ? 'full' : 'short';

/** The short-run value, or the full-run one. */
export function byScale<T>(short: T, full: T): T {
  return FULL ? full : short;
}
