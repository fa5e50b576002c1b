#include "tandem/services/http_server.hpp"

#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>

#include "http_session.hpp"
#include "tandem/base/strings.hpp"
#include "tls_context.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

constexpr std::chrono::milliseconds kAcceptBackoff{50};

// "host:port", "[v6]:port" or ":port" (all interfaces).
Result<tcp::endpoint> ResolveListen(const std::string& listen, asio::io_context& ioc) {
  if (listen.find(':') == std::string::npos) {
    return InvalidArgument("listen address '" + listen + "' is not host:port");
  }
  auto parsed = ParseHostPort(listen, "0.0.0.0");
  if (!parsed.ok()) return parsed.status().WithContext("listen address");
  const std::string& host = parsed->host;
  const uint16_t port = parsed->port;
  const std::string port_text = std::to_string(port);
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

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, std::vector<Route> routes, std::shared_ptr<asio::ssl::context> tls)
      : ioc_(options.threads),
        work_(asio::make_work_guard(ioc_)),
        acceptor_(asio::make_strand(ioc_)),
        accept_backoff_(acceptor_.get_executor()),
        server_(std::make_shared<ServerState>(std::move(options), std::move(routes), std::move(tls))) {}

  ~Impl() { Stop(); }

  Status Listen() {
    const std::string& listen = server_->options.listen;
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
    for (int i = 0; i < server_->options.threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  void Drain(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    {
      // Under stop_mutex_ so that Stop cannot join the io threads before the acceptor is closed.
      std::lock_guard stop_lock(stop_mutex_);
      std::vector<std::shared_ptr<Session>> open;
      {
        std::lock_guard lock(server_->mutex);
        if (server_->stopping) return;
        server_->draining = true;
        open = OpenSessions();
      }
      // Closed before Drain waits, so that a connection attempt from now on is refused.
      std::promise<void> closed;
      asio::dispatch(acceptor_.get_executor(), [this, &closed] {
        CloseAcceptor();
        closed.set_value();
      });
      closed.get_future().wait();
      for (auto& session : open) session->Drain();
    }
    std::unique_lock lock(server_->mutex);
    server_->idle.wait_until(lock, deadline, [this] { return server_->in_flight == 0 || server_->stopping; });
  }

  int in_flight() const {
    std::lock_guard lock(server_->mutex);
    return server_->in_flight;
  }

  void Stop() {
    std::lock_guard stop_lock(stop_mutex_);
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(server_->mutex);
      server_->stopping = true;
      open = OpenSessions();
    }
    server_->idle.notify_all();
    asio::dispatch(acceptor_.get_executor(), [this] { CloseAcceptor(); });
    // Closing a session marks its stream gone, so a producer's Write returns false.
    for (auto& session : open) session->Close();
    open.clear();
    // The io threads keep running (work_) while handlers return: their answers go to closed sockets.
    server_->pool.Shutdown();
    // With the acceptor, every connection and the pool done, the io_context runs out of work.
    work_.reset();
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
  // Caller holds server_->mutex.
  std::vector<std::shared_ptr<Session>> OpenSessions() {
    std::vector<std::shared_ptr<Session>> open;
    for (auto& [raw, weak] : server_->sessions) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
    return open;
  }

  // On the acceptor's strand.
  void CloseAcceptor() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_backoff_.cancel();
  }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
      OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;  // draining or stopped
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
      std::lock_guard lock(server_->mutex);
      if (server_->stopping || server_->draining) return;
      const bool reject = server_->active >= server_->options.max_connections;
      session = MakeSession(std::move(socket), server_, reject);
      if (!reject) ++server_->active;
    }
    session->Start();
    Accept();
  }

  // Destroyed in reverse order: threads (io and handler) are joined by Stop before anything goes, and
  // the acceptor and timer go before the io_context they use.
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;  // io threads outlive the handlers
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
  tcp::endpoint local_;
  std::vector<std::thread> threads_;
  std::mutex stop_mutex_;
  std::shared_ptr<ServerState> server_;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, std::vector<Route> routes) {
  if (options.threads < 1) return InvalidArgument("http server: threads must be at least 1");
  if (options.handler_threads < 1) return InvalidArgument("http server: handler_threads must be at least 1");
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
  std::shared_ptr<asio::ssl::context> tls;
  if (options.tls.enabled()) {
    TANDEM_ASSIGN_OR_RETURN(tls, MakeServerTlsContext(options.tls));
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(routes), std::move(tls));
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

void HttpServer::Drain(std::chrono::milliseconds timeout) {
  impl_->Drain(timeout);
}

int HttpServer::in_flight() const {
  return impl_->in_flight();
}

void HttpServer::Stop() {
  impl_->Stop();
}

}  // namespace tandem::services
