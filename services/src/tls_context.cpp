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

// The policy both sides share: TLS 1.2+ with kTls12Ciphers, no compression, no renegotiation.
Status RestrictProtocols(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
  SSL_CTX* native = context.native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return InvalidArgument("TLS: " + OpenSslError("cannot set the protocol versions and ciphers"));
  }
  return Status::Ok();
}

// Loads a certificate chain and its key into `context`; InvalidArgument naming the file that is wrong.
Status UseCertificateAndKey(ssl::context& context, const char* what, const std::string& cert_file,
                            const std::string& key_file) {
  const std::string cert_what = std::string(what) + " certificate chain";
  const std::string key_what = std::string(what) + " key";
  TANDEM_RETURN_IF_ERROR(CheckReadable(cert_what.c_str(), cert_file));
  TANDEM_RETURN_IF_ERROR(CheckReadable(key_what.c_str(), key_file));
  boost::system::error_code ec;
  context.use_certificate_chain_file(cert_file, ec);
  if (ec) return FileError(cert_what.c_str(), cert_file, ec);
  context.use_private_key_file(key_file, ssl::context::pem, ec);
  const bool mismatch = ec && ec.category() == boost::asio::error::get_ssl_category() &&
                        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) return FileError(key_what.c_str(), key_file, ec);
  if (mismatch || SSL_CTX_check_private_key(context.native_handle()) != 1) {
    ERR_clear_error();
    return InvalidArgument(key_what + " '" + key_file + "' does not match the certificate in '" + cert_file +
                           "'");
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const HttpClientTls>> MakeHttpClientTls(const HttpClientTlsOptions& options) {
  if (options.client_cert_file.empty() != options.client_key_file.empty()) {
    return InvalidArgument("a TLS client certificate and its key go together");
  }
  auto tls = std::make_shared<HttpClientTls>();
  ssl::context& context = tls->context;
  TANDEM_RETURN_IF_ERROR(RestrictProtocols(context));
  boost::system::error_code ec;
  if (options.ca_file.empty()) {
    context.set_default_verify_paths(ec);
    if (ec) return InvalidArgument("TLS: cannot load the system's CA certificates: " + ec.message());
  } else {
    TANDEM_RETURN_IF_ERROR(CheckReadable("TLS CA file", options.ca_file));
    context.load_verify_file(options.ca_file, ec);
    if (ec) return FileError("TLS CA file", options.ca_file, ec);
  }
  context.set_verify_mode(ssl::verify_peer);
  if (!options.client_cert_file.empty()) {
    TANDEM_RETURN_IF_ERROR(
        UseCertificateAndKey(context, "TLS client", options.client_cert_file, options.client_key_file));
  }
  return std::shared_ptr<const HttpClientTls>(std::move(tls));
}

Result<std::shared_ptr<ssl::context>> MakeServerTlsContext(const HttpTlsOptions& options) {
  if (options.cert_chain_file.empty() || options.key_file.empty()) {
    return InvalidArgument("TLS needs both a certificate chain file and a key file");
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  TANDEM_RETURN_IF_ERROR(RestrictProtocols(*context));
  context->set_options(ssl::context::single_dh_use);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  TANDEM_RETURN_IF_ERROR(UseCertificateAndKey(*context, "TLS", options.cert_chain_file, options.key_file));
  if (!options.client_ca_file.empty()) {
    TANDEM_RETURN_IF_ERROR(CheckReadable("TLS client CA", options.client_ca_file));
    boost::system::error_code ec;
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
