// DTMF digits of a call collected into one user message (SPEC §3.7): a digit string ends with `#`, after 32
// digits, or when no digit came for the timeout.

const MAX_DIGITS = 32;

export class DtmfCollector {
  private digits = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly timeoutMs: number,
    private readonly onDigits: (digits: string) => void,
  ) {}

  add(digit: string): void {
    this.clearTimer();
    if (digit !== '#') this.digits += digit;
    if (digit === '#' || this.digits.length >= MAX_DIGITS) {
      this.flush();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, this.timeoutMs);
  }

  close(): void {
    this.clearTimer();
  }

  private flush(): void {
    const digits = this.digits;
    this.digits = '';
    if (digits !== '') this.onDigits(digits);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
