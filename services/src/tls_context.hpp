// OpenSSL contexts with the project's policy (TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, no
// compression, no renegotiation). The server side, made from HttpTlsOptions, requires and verifies client
// certificates when a client CA is given; the client side (HttpClientTls) always verifies the server.
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "tandem/base/status.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/services/http_server.hpp"

namespace tandem::services {

// Loads the certificate chain, the key (which must match it) and the client CAs. InvalidArgument naming
// the file for one that is missing, unreadable or not what it should be.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const HttpTlsOptions& options);

// Made by MakeHttpClientTls (http_client.hpp). Streams take the context by non-const reference, but
// OpenSSL only reads it once set up, so one context serves concurrent connections.
class HttpClientTls {
 public:
  mutable boost::asio::ssl::context context{boost::asio::ssl::context::tls_client};
};

}  // namespace tandem::services
