/** What a registry accepts as proof of identity, wherever it was found (credentials.ts, credential-helper.ts). */

/** What a registry accepts as proof of identity. */
export interface Credential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm for access tokens. */
  identityToken?: string;
  /** A bearer token sent as is (`registrytoken`). */
  registryToken?: string;
  /** Where the credential came from, for messages (`/home/me/.docker/config.json`). */
  source: string;
}
