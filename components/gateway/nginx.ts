/**
 * The nginx gateway renderer lives in nginx/ (syntax, gateway, pool). This entry stays for the
 * sandbox, which loads a gateway kind's renderer by this path.
 */
export { renderNginxConf } from "./nginx/gateway";
