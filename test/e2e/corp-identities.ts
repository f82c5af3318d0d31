/** The Entra-shaped tenant, groups and users the identity e2e tests (stub and real IdP) share. */
export const TENANT = "00000000-1111-2222-3333-444444444444";
/** The allowed group. */
export const ML = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
/** A group the stack does not allow. */
export const OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
export const ALICE = "alice@corp.example";
/** Signs in fine but is in no allowed group. */
export const MALLORY = "mallory@corp.example";
