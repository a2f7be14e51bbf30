/**
 * The signing algorithms a registry token may use: asymmetric only, so no "none" and no HMAC
 * that a public key could be abused as the secret of. auth.token.signingalgorithms narrows it.
 */
export const SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
