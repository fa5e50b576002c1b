#include "tandem/services/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "tandem/base/log.hpp"

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
// A producer's Write blocks while this much is queued unsent (a slow client must not grow memory).
constexpr size_t kMaxQueuedStreamBytes = 1 << 20;
// While streaming, what the client sends is read ahead (that read is how its leaving is noticed) up to
// this much; the next request of a keep-alive connection fits.
constexpr size_t kPeerWatchReadBytes = 4096;
constexpr size_t kMaxReadAheadBytes = 64 * 1024;

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

bool StatusHasBody(int status) {
  return status >= 200 && status != 204 && status != 304;
}

template <class Body>
void SetBeastHeader(http::response<Body>& raw, HttpResponse& response, const std::string& request_id,
                    bool keep_alive, unsigned version) {
  raw.version(version);
  raw.result(static_cast<unsigned>(response.status));
  raw.set(http::field::server, "tandem");
  if (!response.content_type.empty()) raw.set(http::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) {
    if (!IsServerOwnedHeader(name)) raw.insert(name, value);
  }
  raw.set("X-Request-Id", request_id);
  raw.keep_alive(keep_alive);
}

http::response<http::string_body> ToBeastResponse(HttpResponse response, const std::string& request_id,
                                                  bool keep_alive, unsigned version) {
  http::response<http::string_body> raw;
  SetBeastHeader(raw, response, request_id, keep_alive, version);
  // 1xx, 204 and 304 carry no body (prepare_payload refuses one).
  if (StatusHasBody(response.status)) raw.body() = std::move(response.body);
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

// Runs handlers and stream producers off the io threads. The queue holds at most one task per open
// connection (a connection reads its next request only once the previous answer is out), so
// max_connections bounds it.
class HandlerPool {
 public:
  explicit HandlerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~HandlerPool() { Shutdown(); }
  HandlerPool(const HandlerPool&) = delete;
  HandlerPool& operator=(const HandlerPool&) = delete;

  // Thread-safe. After Shutdown the task is dropped without running.
  void Submit(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        tasks_.push_back(std::move(task));
        wake_.notify_one();
        return;
      }
    }
    task = nullptr;  // outside the lock: dropping a task may end a session
  }

  // Drops the queued tasks, waits for the running ones and joins the threads. Not from a pool thread.
  void Shutdown() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      dropped.swap(tasks_);
    }
    wake_.notify_all();
    dropped.clear();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  std::vector<std::thread> threads_;
};

class Session;

// What the acceptor and the sessions share. Sessions hold it by shared_ptr, so it outlives them however
// the io_context is torn down. The pool is shut down by Impl::Stop before Impl lets go of it, so it is
// never destroyed on one of its own threads.
struct ServerState {
  ServerState(HttpServerOptions options_in, std::vector<Route> routes_in)
      : options(std::move(options_in)), routes(std::move(routes_in)), pool(options.handler_threads) {}

  const HttpServerOptions options;
  const std::vector<Route> routes;
  HandlerPool pool;

  std::atomic<bool> draining = false;  // set under mutex
  std::atomic<bool> stopping = false;  // set under mutex
  std::mutex mutex;
  std::condition_variable idle;  // notified when in_flight drops to 0, and on Stop
  int active = 0;                // sessions being served (not rejected); guarded by mutex
  int in_flight = 0;             // requests dispatched and not yet fully answered; guarded by mutex
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // every open session; guarded by mutex
};

// The pieces of one streamed body, between its producer (a handler thread) and the connection's strand.
struct StreamQueue {
  std::mutex mutex;
  std::condition_variable drained;  // queued_bytes went down, or the client is gone
  std::deque<std::string> pieces;   // guarded by mutex
  size_t queued_bytes = 0;          // pieces plus the one being written; guarded by mutex
  bool wake_posted = false;         // a Pump is on its way to the strand; guarded by mutex
  std::atomic<bool> gone = false;   // set under mutex

  void MarkGone() {
    {
      std::lock_guard lock(mutex);
      gone = true;
    }
    drained.notify_all();
  }
};

// The producer's side of a StreamQueue. `wake` posts a Pump to the connection's strand.
class StreamWriter final : public ResponseStream {
 public:
  StreamWriter(std::shared_ptr<StreamQueue> queue, const ServerState& state, std::function<void()> wake)
      : queue_(std::move(queue)), state_(state), wake_(std::move(wake)) {}

  bool Write(std::string data) override {
    std::unique_lock lock(queue_->mutex);
    // Stop also marks every queue gone; the timed wait is a backstop, not the mechanism.
    while (queue_->queued_bytes >= kMaxQueuedStreamBytes && !ClientGone()) {
      queue_->drained.wait_for(lock, std::chrono::milliseconds(50));
    }
    if (ClientGone()) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    queue_->queued_bytes += data.size();
    queue_->pieces.push_back(std::move(data));
    if (queue_->wake_posted) return true;
    queue_->wake_posted = true;
    lock.unlock();
    wake_();
    return true;
  }

  bool ClientGone() const override { return queue_->gone || state_.stopping; }

 private:
  const std::shared_ptr<StreamQueue> queue_;
  const ServerState& state_;
  const std::function<void()> wake_;
};

// One connection: read a request, hand it to a handler thread, write the answer (whole, or streamed as
// the producer writes it), repeat while keep-alive. Everything but the handler and the producer runs on
// the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> state, bool reject)
      : stream_(std::move(socket)), state_(std::move(state)), reject_(reject) {}

  ~Session() {
    EndInFlight();
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

  // Thread-safe: pending reads and writes complete with an error, a producer sees the client gone and the
  // session ends.
  void Close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

  // Thread-safe: closes the connection if it waits for a request of which nothing has arrived. The
  // server is draining, which the session checks at every other step.
  void Drain() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->reading_ && !self->parser_->got_some() && self->buffer_.size() == 0) self->CloseNow();
    });
  }

 private:
  const HttpServerOptions& options() const { return state_->options; }

  void ReadRequest() {
    // Idle keep-alive while draining: nobody is waiting for an answer, so close rather than wait.
    if (state_->draining && buffer_.size() == 0) return CloseNow();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
    parser_->body_limit(static_cast<uint64_t>(options().max_body_bytes));
    stream_.expires_after(options().request_timeout);
    reading_ = true;
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    reading_ = false;
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
    if (state_->draining) {
      return Respond(ErrorResponse(503, "The server is shutting down; retry on a new connection.",
                                   "server_error", "shutting_down"),
                     RequestIdFrom(raw.base()), /*keep_alive=*/false, version);
    }
    BeginInFlight();
    state_->pool.Submit(
        [self = shared_from_this(), request = ToHttpRequest(std::move(raw)), keep_alive, version] {
          HttpResponse response = Dispatch(self->state_->routes, request);
          asio::post(
              self->stream_.get_executor(),
              [self, response = std::move(response), request_id = request.request_id, keep_alive,
               version]() mutable { self->OnHandled(std::move(response), request_id, keep_alive, version); });
        });
  }

  void OnHandled(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version) {
    if (closed_) return EndInFlight();  // Stop, or the client left while the handler ran
    keep_alive = keep_alive && !state_->draining;
    if (response.stream && StatusHasBody(response.status)) {
      return StartStream(std::move(response), request_id, keep_alive, version);
    }
    Respond(std::move(response), request_id, keep_alive, version);
  }

  void Respond(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version) {
    response_.emplace(ToBeastResponse(std::move(response), request_id, keep_alive, version));
    stream_.expires_after(options().request_timeout);
    http::async_write(stream_, *response_, beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t /*bytes*/) {
    const bool close = response_->need_eof();
    response_.reset();
    EndInFlight();
    if (ec) return CloseNow();
    if (close) return LingerThenClose();
    ReadRequest();
  }

  // Streaming: header, then one chunk per piece the producer writes, then the last chunk. `writing_`
  // keeps one write at a time; a raw read on the socket (WatchPeer) notices the client leaving.
  void StartStream(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version) {
    chunked_ = version >= 11;  // HTTP/1.0 has no chunks: the body ends with the connection
    close_after_stream_ = !keep_alive || !chunked_;
    stream_header_ = std::make_unique<http::response<http::empty_body>>();
    SetBeastHeader(*stream_header_, response, request_id, !close_after_stream_, version);
    if (chunked_) stream_header_->chunked(true);
    stream_serializer_ = std::make_unique<http::response_serializer<http::empty_body>>(*stream_header_);
    stream_queue_ = std::make_shared<StreamQueue>();
    streaming_ = true;
    producer_done_ = false;
    beast::error_code ignored;  // tokens are small writes: do not let Nagle hold them back
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    writing_ = true;
    stream_.expires_after(options().request_timeout);
    http::async_write_header(stream_, *stream_serializer_,
                             beast::bind_front_handler(&Session::OnPieceWritten, shared_from_this()));
    WatchPeer();
    auto wake = [weak = weak_from_this()] {
      if (auto self = weak.lock()) asio::post(self->stream_.get_executor(), [self] { self->Pump(); });
    };
    state_->pool.Submit([self = shared_from_this(), queue = stream_queue_,
                         producer = std::move(response.stream), wake = std::move(wake), request_id] {
      StreamWriter writer(queue, *self->state_, wake);
      bool failed = false;
      try {
        producer(writer);
      } catch (const std::exception& e) {
        failed = true;
        LogStreamError(request_id, e.what());
      } catch (...) {
        failed = true;
        LogStreamError(request_id, "unknown exception");
      }
      asio::post(self->stream_.get_executor(), [self, failed] { self->OnProducerDone(failed); });
    });
  }

  void Pump() {
    if (!streaming_ || writing_ || closed_) return;
    std::optional<std::string> piece;
    {
      std::lock_guard lock(stream_queue_->mutex);
      stream_queue_->wake_posted = false;
      if (!stream_queue_->pieces.empty()) {
        piece = std::move(stream_queue_->pieces.front());
        stream_queue_->pieces.pop_front();
      }
    }
    if (piece) {
      current_piece_ = std::move(*piece);
      writing_ = true;
      stream_.expires_after(options().request_timeout);
      auto on_written = beast::bind_front_handler(&Session::OnPieceWritten, shared_from_this());
      if (chunked_) {
        asio::async_write(stream_, http::make_chunk(asio::buffer(current_piece_)), std::move(on_written));
      } else {
        asio::async_write(stream_, asio::buffer(current_piece_), std::move(on_written));
      }
      return;
    }
    if (!producer_done_) return;
    if (!chunked_) return EndStream();
    writing_ = true;
    stream_.expires_after(options().request_timeout);
    asio::async_write(stream_, http::make_chunk_last(),
                      [self = shared_from_this()](beast::error_code ec, size_t /*bytes*/) {
                        self->writing_ = false;
                        if (ec) self->CloseNow();
                        self->EndStream();
                      });
  }

  void OnPieceWritten(beast::error_code ec, size_t /*bytes*/) {
    writing_ = false;
    {
      std::lock_guard lock(stream_queue_->mutex);
      stream_queue_->queued_bytes -= current_piece_.size();
    }
    stream_queue_->drained.notify_all();
    current_piece_.clear();
    if (ec) CloseNow();  // the producer learns it from Write; the stream ends when it returns
    if (!closed_) return Pump();
    if (producer_done_) EndStream();
  }

  void OnProducerDone(bool failed) {
    producer_done_ = true;
    // No final chunk after a failure: the client must see the body cut off, not complete.
    if (failed) CloseNow();
    if (!closed_) return Pump();
    if (!writing_) EndStream();  // else OnPieceWritten ends it: the write still uses the buffers
  }

  void EndStream() {
    streaming_ = false;
    stream_queue_.reset();
    stream_serializer_.reset();
    stream_header_.reset();
    EndInFlight();
    if (closed_) return;
    if (watching_) {
      // OnPeerRead goes on once the watch is cancelled (no write is pending now).
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    AfterStream();
  }

  void AfterStream() {
    if (close_after_stream_) return LingerThenClose();
    ReadRequest();
  }

  // Reads on the bare socket (no tcp_stream deadline: a generation may take minutes), into buffer_, so
  // that a request the client pipelines is kept for the next ReadRequest.
  void WatchPeer() {
    watching_ = true;
    stream_.socket().async_read_some(buffer_.prepare(kPeerWatchReadBytes),
                                     beast::bind_front_handler(&Session::OnPeerRead, shared_from_this()));
  }

  void OnPeerRead(beast::error_code ec, size_t bytes) {
    watching_ = false;
    if (!ec) buffer_.commit(bytes);
    if (closed_) return;
    if (streaming_) {
      if (ec) return CloseNow();  // end of stream or reset: the client is gone
      if (buffer_.size() < kMaxReadAheadBytes) WatchPeer();
      return;
    }
    // The stream has ended and cancelled this read (or data came in just before).
    if (ec && ec != asio::error::operation_aborted) return CloseNow();
    AfterStream();
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
    closed_ = true;
    if (stream_queue_) stream_queue_->MarkGone();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  void BeginInFlight() {
    in_flight_ = true;
    std::lock_guard lock(state_->mutex);
    ++state_->in_flight;
  }

  // Idempotent; also from the destructor (the session may end with its answer unsent).
  void EndInFlight() {
    if (!in_flight_) return;
    in_flight_ = false;
    std::lock_guard lock(state_->mutex);
    if (--state_->in_flight == 0) state_->idle.notify_all();
  }

  static void LogStreamError(const std::string& request_id, std::string error) {
    Log(LogLevel::kError, "http", "stream producer failed",
        {{"request_id", request_id}, {"error", std::move(error)}});
  }

  beast::tcp_stream stream_;
  const std::shared_ptr<ServerState> state_;
  const bool reject_;          // over max_connections: answer 503 and close
  beast::flat_buffer buffer_;  // persists across requests: it may hold the start of a pipelined one
  std::optional<http::request_parser<http::string_body>> parser_;  // a parser serves one request
  std::optional<http::response<http::string_body>> response_;      // alive until its write completes
  std::vector<char> linger_buffer_;
  size_t lingered_bytes_ = 0;
  bool reading_ = false;    // a ReadRequest is pending
  bool in_flight_ = false;  // counted in state_->in_flight
  bool closed_ = false;     // CloseNow ran: nothing more is sent

  // The streamed answer being sent; alive until EndStream.
  std::unique_ptr<http::response<http::empty_body>> stream_header_;
  std::unique_ptr<http::response_serializer<http::empty_body>> stream_serializer_;
  std::shared_ptr<StreamQueue> stream_queue_;
  std::string current_piece_;  // the piece being written
  bool streaming_ = false;
  bool chunked_ = false;
  bool close_after_stream_ = false;
  bool producer_done_ = false;
  bool writing_ = false;   // a write of the stream is pending
  bool watching_ = false;  // a WatchPeer read is pending
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
      : ioc_(options.threads),
        work_(asio::make_work_guard(ioc_)),
        acceptor_(asio::make_strand(ioc_)),
        accept_backoff_(acceptor_.get_executor()),
        state_(std::make_shared<ServerState>(std::move(options), std::move(routes))) {}

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

  void Drain(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    {
      // Under stop_mutex_ so that Stop cannot join the io threads before the acceptor is closed.
      std::lock_guard stop_lock(stop_mutex_);
      std::vector<std::shared_ptr<Session>> open;
      {
        std::lock_guard lock(state_->mutex);
        if (state_->stopping) return;
        state_->draining = true;
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
    std::unique_lock lock(state_->mutex);
    state_->idle.wait_until(lock, deadline, [this] { return state_->in_flight == 0 || state_->stopping; });
  }

  int in_flight() const {
    std::lock_guard lock(state_->mutex);
    return state_->in_flight;
  }

  void Stop() {
    std::lock_guard stop_lock(stop_mutex_);
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(state_->mutex);
      state_->stopping = true;
      open = OpenSessions();
    }
    state_->idle.notify_all();
    asio::dispatch(acceptor_.get_executor(), [this] { CloseAcceptor(); });
    // Closing a session marks its stream gone, so a producer's Write returns false.
    for (auto& session : open) session->Close();
    open.clear();
    // The io threads keep running (work_) while handlers return: their answers go to closed sockets.
    state_->pool.Shutdown();
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
  // Caller holds state_->mutex.
  std::vector<std::shared_ptr<Session>> OpenSessions() {
    std::vector<std::shared_ptr<Session>> open;
    for (auto& [raw, weak] : state_->sessions) {
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
      std::lock_guard lock(state_->mutex);
      if (state_->stopping || state_->draining) return;
      const bool reject = state_->active >= state_->options.max_connections;
      session = std::make_shared<Session>(std::move(socket), state_, reject);
      state_->sessions.emplace(session.get(), session);
      if (!reject) ++state_->active;
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
  std::shared_ptr<ServerState> state_;
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
