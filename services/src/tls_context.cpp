#include "tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/error.hpp>

#include <fstream>
#include <string>

namespace tandem::services {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305 only. TLS 1.3
// keeps OpenSSL's defaults, which are all AEAD.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// Session resumption with client certificates needs an id context (OpenSSL refuses resumption without).
constexpr unsigned char kSessionIdContext[] = "tandem-http";

// The most recent OpenSSL error, or `fallback` when its queue is empty.
std::string OpenSslError(const char* fallback) {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

Status CheckReadable(const char* what, const std::string& path) {
  if (!std::ifstream(path).good())
    return InvalidArgument(std::string(what) + " '" + path + "' cannot be read");
  return Status::Ok();
}

Status FileError(const char* what, const std::string& path, const boost::system::error_code& ec) {
  return InvalidArgument(std::string(what) + " '" + path + "': " + ec.message());
}

}  // namespace

Result<std::shared_ptr<ssl::context>> MakeServerTlsContext(const HttpTlsOptions& options) {
  if (options.cert_chain_file.empty() || options.key_file.empty()) {
    return InvalidArgument("TLS needs both a certificate chain file and a key file");
  }
  TANDEM_RETURN_IF_ERROR(CheckReadable("TLS certificate chain", options.cert_chain_file));
  TANDEM_RETURN_IF_ERROR(CheckReadable("TLS key", options.key_file));
  if (!options.client_ca_file.empty()) {
    TANDEM_RETURN_IF_ERROR(CheckReadable("TLS client CA", options.client_ca_file));
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return InvalidArgument("TLS: " + OpenSslError("cannot set the protocol versions and ciphers"));
  }
  boost::system::error_code ec;
  context->use_certificate_chain_file(options.cert_chain_file, ec);
  if (ec) return FileError("TLS certificate chain", options.cert_chain_file, ec);
  context->use_private_key_file(options.key_file, ssl::context::pem, ec);
  const bool mismatch = ec && ec.category() == boost::asio::error::get_ssl_category() &&
                        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) return FileError("TLS key", options.key_file, ec);
  if (mismatch || SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return InvalidArgument("TLS key '" + options.key_file + "' does not match the certificate in '" +
                           options.cert_chain_file + "'");
  }
  if (!options.client_ca_file.empty()) {
    context->load_verify_file(options.client_ca_file, ec);
    if (ec) return FileError("TLS client CA", options.client_ca_file, ec);
    // Tells clients which CAs are accepted, so that one holding several certificates picks the right one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names == nullptr) {
      return InvalidArgument("TLS client CA '" + options.client_ca_file +
                             "': " + OpenSslError("no certificate in it"));
    }
    SSL_CTX_set_client_CA_list(native, names);
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof kSessionIdContext - 1);
  }
  return context;
}

}  // namespace tandem::services
