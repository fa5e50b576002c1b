// The server side of HTTPS: an OpenSSL context made from HttpTlsOptions, with the project's policy (TLS
// 1.2 and 1.3 only, forward-secret AEAD ciphers, no compression, no renegotiation; client certificates
// required and verified when a client CA is given).
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "tandem/base/status.hpp"
#include "tandem/services/http_server.hpp"

namespace tandem::services {

// Loads the certificate chain, the key (which must match it) and the client CAs. InvalidArgument naming
// the file for one that is missing, unreadable or not what it should be.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const HttpTlsOptions& options);

}  // namespace tandem::services
