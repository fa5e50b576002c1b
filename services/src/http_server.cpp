#include "tandem/services/http_server.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "tandem/common/log.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxRequestIdLength = 128;
// After answering with "close", the rest of what the client sent is read and dropped for a short while
// before the socket is closed: closing with unread data sends a RST, which can destroy the answer before
// the client reads it (a 413 while the client is still uploading).
constexpr std::chrono::milliseconds kMaxLinger{2000};
constexpr size_t kMaxLingerBytes = 1 << 20;
constexpr std::chrono::milliseconds kAcceptBackoff{50};

std::string_view ToStd(beast::string_view text) {
  return {text.data(), text.size()};
}

std::string ToLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// A client's id is echoed into our headers and logs, so only short ids of harmless characters are kept.
bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':';
  });
}

std::string GenerateRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t i = 0; i < id.size(); i += 16) {
    uint64_t bits = rng();
    for (size_t j = 0; j < 16; ++j, bits >>= 4) id[i + j] = kHex[bits & 0xf];
  }
  return id;
}

std::string RequestIdFrom(const http::fields& fields) {
  const auto it = fields.find("x-request-id");
  if (it != fields.end() && IsSaneRequestId(ToStd(it->value()))) return std::string(ToStd(it->value()));
  return GenerateRequestId();
}

HttpRequest ToHttpRequest(http::request<http::string_body>&& raw) {
  HttpRequest request;
  request.method = std::string(ToStd(raw.method_string()));
  const std::string_view target = ToStd(raw.target());
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));
  for (const auto& field : raw) {
    request.headers.emplace_back(ToLower(ToStd(field.name_string())), std::string(ToStd(field.value())));
  }
  request.body = std::move(raw.body());
  request.request_id = RequestIdFrom(raw.base());
  return request;
}

// Headers the server owns; a handler's copy of them is dropped.
bool IsServerOwnedHeader(std::string_view name) {
  for (std::string_view owned : {"content-length", "transfer-encoding", "connection", "x-request-id"}) {
    if (beast::iequals(beast::string_view(name.data(), name.size()),
                       beast::string_view(owned.data(), owned.size()))) {
      return true;
    }
  }
  return false;
}

http::response<http::string_body> ToBeastResponse(HttpResponse response, const std::string& request_id,
                                                  bool keep_alive, unsigned version) {
  http::response<http::string_body> raw;
  raw.version(version);
  raw.result(static_cast<unsigned>(response.status));
  raw.set(http::field::server, "tandem");
  if (!response.content_type.empty()) raw.set(http::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) {
    if (!IsServerOwnedHeader(name)) raw.insert(name, value);
  }
  raw.set("X-Request-Id", request_id);
  raw.keep_alive(keep_alive);
  // 1xx, 204 and 304 carry no body (prepare_payload refuses one).
  const int status = response.status;
  if (status >= 200 && status != 204 && status != 304) raw.body() = std::move(response.body);
  raw.prepare_payload();
  return raw;
}

void LogHandlerError(const HttpRequest& request, std::string error) {
  Log(LogLevel::kError, "http", "handler failed",
      {{"request_id", request.request_id},
       {"method", request.method},
       {"path", request.path},
       {"error", std::move(error)}});
}

HttpResponse CallHandler(const Route& route, const HttpRequest& request) {
  HttpResponse response;
  try {
    response = route.handler(request);
  } catch (const std::exception& e) {
    LogHandlerError(request, e.what());
    return ErrorResponse(500, "The server had an error while processing the request.", "server_error",
                         "internal_error");
  } catch (...) {
    LogHandlerError(request, "unknown exception");
    return ErrorResponse(500, "The server had an error while processing the request.", "server_error",
                         "internal_error");
  }
  if (response.status < 100 || response.status > 599) {
    LogHandlerError(request, "handler returned HTTP status " + std::to_string(response.status));
    return ErrorResponse(500, "The server had an error while processing the request.", "server_error",
                         "internal_error");
  }
  return response;
}

enum class ReadFailure { kPeerGone, kMalformed, kHeaderTooLarge, kBodyTooLarge };

ReadFailure ClassifyReadError(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return ReadFailure::kHeaderTooLarge;
  if (ec == http::error::body_limit) return ReadFailure::kBodyTooLarge;
  // The client closed (between or inside a request): nobody is left to answer.
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return ReadFailure::kPeerGone;
  if (&ec.category() == &http::make_error_code(http::error::bad_method).category()) {
    return ReadFailure::kMalformed;
  }
  return ReadFailure::kPeerGone;  // timeout, reset, aborted by Stop
}

class Session;

// What the acceptor and the sessions share. Sessions hold it by shared_ptr, so it outlives them however
// the io_context is torn down.
struct ServerState {
  HttpServerOptions options;
  std::vector<Route> routes;

  std::mutex mutex;
  bool stopping = false;  // guarded by mutex
  int active = 0;         // sessions being served (not rejected); guarded by mutex
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // every open session; guarded by mutex
};

// One connection: read a request, dispatch it, write the answer, repeat while keep-alive. Everything runs
// on the connection's strand. A later version adds streamed (SSE) answers at Respond/OnWrite.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> state, bool reject)
      : stream_(std::move(socket)), state_(std::move(state)), reject_(reject) {}

  ~Session() {
    std::lock_guard lock(state_->mutex);
    state_->sessions.erase(this);
    if (!reject_) --state_->active;
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->reject_) return self->ReadRequest();
      HttpResponse overloaded = ErrorResponse(503, "The server is at its connection limit; retry later.",
                                              "server_error", "overloaded");
      overloaded.headers.emplace_back("Retry-After", "1");
      self->Respond(std::move(overloaded), GenerateRequestId(), /*keep_alive=*/false, 11);
    });
  }

  // Thread-safe: pending reads and writes complete with an error and the session ends.
  void Close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

 private:
  const HttpServerOptions& options() const { return state_->options; }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
    parser_->body_limit(static_cast<uint64_t>(options().max_body_bytes));
    stream_.expires_after(options().request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    if (ec) {
      const ReadFailure failure = ClassifyReadError(ec);
      if (failure == ReadFailure::kPeerGone) return CloseNow();
      const std::string request_id =
          parser_->is_header_done() ? RequestIdFrom(parser_->get().base()) : GenerateRequestId();
      HttpResponse error;
      if (failure == ReadFailure::kHeaderTooLarge) {
        error = ErrorResponse(
            431, "Request header exceeds " + std::to_string(options().max_header_bytes) + " bytes.",
            "invalid_request_error", "header_too_large");
      } else if (failure == ReadFailure::kBodyTooLarge) {
        error =
            ErrorResponse(413, "Request body exceeds " + std::to_string(options().max_body_bytes) + " bytes.",
                          "invalid_request_error", "body_too_large");
      } else {
        error = ErrorResponse(400, "Malformed HTTP request: " + ec.message() + ".", "invalid_request_error",
                              "bad_request");
      }
      return Respond(std::move(error), request_id, /*keep_alive=*/false, 11);
    }
    http::request<http::string_body> raw = parser_->release();
    parser_.reset();
    const bool keep_alive = raw.keep_alive();
    const unsigned version = raw.version();
    const HttpRequest request = ToHttpRequest(std::move(raw));
    Respond(Dispatch(state_->routes, request), request.request_id, keep_alive, version);
  }

  void Respond(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version) {
    response_.emplace(ToBeastResponse(std::move(response), request_id, keep_alive, version));
    stream_.expires_after(options().request_timeout);
    http::async_write(stream_, *response_, beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t /*bytes*/) {
    const bool close = response_->need_eof();
    response_.reset();
    if (ec) return CloseNow();
    if (close) return LingerThenClose();
    ReadRequest();
  }

  void LingerThenClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::min<std::chrono::milliseconds>(options().request_timeout, kMaxLinger));
    linger_buffer_.resize(4096);
    ReadAndDrop();
  }

  void ReadAndDrop() {
    stream_.async_read_some(asio::buffer(linger_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                              self->lingered_bytes_ += bytes;
                              if (ec || self->lingered_bytes_ > kMaxLingerBytes) return self->CloseNow();
                              self->ReadAndDrop();
                            });
  }

  void CloseNow() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  const std::shared_ptr<ServerState> state_;
  const bool reject_;          // over max_connections: answer 503 and close
  beast::flat_buffer buffer_;  // persists across requests: it may hold the start of a pipelined one
  std::optional<http::request_parser<http::string_body>> parser_;  // a parser serves one request
  std::optional<http::response<http::string_body>> response_;      // alive until its write completes
  std::vector<char> linger_buffer_;
  size_t lingered_bytes_ = 0;
};

// "host:port", "[v6]:port" or ":port" (all interfaces).
Result<tcp::endpoint> ResolveListen(const std::string& listen, asio::io_context& ioc) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgument("listen address '" + listen + "' is not host:port");
  }
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  uint16_t port = 0;
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, error] = std::from_chars(port_text.data(), end, port);
  if (port_text.empty() || error != std::errc() || ptr != end) {
    return InvalidArgument("listen address '" + listen + "': '" + port_text + "' is not a port number");
  }
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, port);
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(host, port_text, tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return InvalidArgument("listen address '" + listen + "': cannot resolve '" + host +
                           "': " + (ec ? ec.message() : "no address"));
  }
  return results.begin()->endpoint();
}

}  // namespace

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpResponse ErrorResponse(int status, std::string message, std::string type, std::string code,
                           std::string param) {
  nlohmann::json error = {
      {"message", std::move(message)}, {"type", std::move(type)}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = std::move(param);
  if (!code.empty()) error["code"] = std::move(code);
  HttpResponse response;
  response.status = status;
  // Messages may quote client input (a path), which need not be valid UTF-8.
  response.body = nlohmann::json{{"error", std::move(error)}}.dump(-1, ' ', false,
                                                                   nlohmann::json::error_handler_t::replace);
  return response;
}

HttpResponse Dispatch(const std::vector<Route>& routes, const HttpRequest& request) {
  std::string allow;
  for (const Route& route : routes) {
    if (route.path != request.path) continue;
    if (route.method == request.method) return CallHandler(route, request);
    if (!allow.empty()) allow += ", ";
    allow += route.method;
  }
  if (allow.empty()) {
    return ErrorResponse(404, "Unknown path '" + request.path + "'.", "invalid_request_error", "not_found");
  }
  HttpResponse response =
      ErrorResponse(405, "Method " + request.method + " is not allowed on '" + request.path + "'.",
                    "invalid_request_error", "method_not_allowed");
  response.headers.emplace_back("Allow", std::move(allow));
  return response;
}

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, std::vector<Route> routes)
      : state_(std::make_shared<ServerState>()),
        ioc_(options.threads),
        acceptor_(asio::make_strand(ioc_)),
        accept_backoff_(acceptor_.get_executor()) {
    state_->options = std::move(options);
    state_->routes = std::move(routes);
  }

  ~Impl() { Stop(); }

  Status Listen() {
    const std::string& listen = state_->options.listen;
    TANDEM_ASSIGN_OR_RETURN(const tcp::endpoint endpoint, ResolveListen(listen, ioc_));
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) local_ = acceptor_.local_endpoint(ec);
    if (ec) return Unavailable("cannot listen on " + listen + ": " + ec.message());
    return Status::Ok();
  }

  void Run() {
    Accept();
    for (int i = 0; i < state_->options.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  void Stop() {
    std::lock_guard stop_lock(stop_mutex_);
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(state_->mutex);
      state_->stopping = true;
      for (auto& [raw, weak] : state_->sessions) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
      }
    }
    asio::dispatch(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      accept_backoff_.cancel();
    });
    for (auto& session : open) session->Close();
    open.clear();
    // With the acceptor and every connection closed the io_context runs out of work and run() returns.
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

  uint16_t port() const { return local_.port(); }

  std::string address() const {
    const asio::ip::address address = local_.address();
    const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return host + ":" + std::to_string(local_.port());
  }

 private:
  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
      OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;  // stopped
    if (ec) {
      // Out of file descriptors or a connection reset before accept: retry shortly rather than spin.
      accept_backoff_.expires_after(kAcceptBackoff);
      accept_backoff_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor_.is_open()) Accept();
      });
      return;
    }
    std::shared_ptr<Session> session;
    {
      std::lock_guard lock(state_->mutex);
      if (state_->stopping) return;
      const bool reject = state_->active >= state_->options.max_connections;
      session = std::make_shared<Session>(std::move(socket), state_, reject);
      state_->sessions.emplace(session.get(), session);
      if (!reject) ++state_->active;
    }
    session->Start();
    Accept();
  }

  // Destroyed in reverse order: threads are joined (by Stop) before the io_context goes, and the
  // acceptor and timer go before the io_context they use.
  std::shared_ptr<ServerState> state_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
  tcp::endpoint local_;
  std::vector<std::thread> threads_;
  std::mutex stop_mutex_;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, std::vector<Route> routes) {
  if (options.threads < 1) return InvalidArgument("http server: threads must be at least 1");
  if (options.max_connections < 1) return InvalidArgument("http server: max_connections must be at least 1");
  if (options.max_header_bytes == 0) return InvalidArgument("http server: max_header_bytes must be positive");
  if (options.request_timeout.count() <= 0) {
    return InvalidArgument("http server: request_timeout must be positive");
  }
  for (const Route& route : routes) {
    if (route.method.empty() || route.path.empty() || !route.handler) {
      return InvalidArgument("http server: route '" + route.method + " " + route.path +
                             "' needs a method, a path and a handler");
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(routes));
  TANDEM_RETURN_IF_ERROR(impl->Listen());
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  Stop();
}

uint16_t HttpServer::port() const {
  return impl_->port();
}

std::string HttpServer::address() const {
  return impl_->address();
}

void HttpServer::Stop() {
  impl_->Stop();
}

}  // namespace tandem::services
