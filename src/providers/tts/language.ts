// Call languages arrive as ai-manager stores them (`en-US`, `de_DE`, `pt-BR`, sometimes just `en`); providers that
// take ISO 639-1 codes (Cartesia, ElevenLabs, Deepgram Aura's model names) need the two-letter language alone.

/** `en-US` → `en`; '' stays ''; anything that is not a language tag → '' (the provider's default). */
export function languageCode(tag: string): string {
  const m = /^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$/.exec(tag.trim());
  return m === null ? '' : (m[1] ?? '').toLowerCase();
}
