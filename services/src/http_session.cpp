#include "http_session.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>
#include <utility>

#include <prometheus/counter.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "http_message.hpp"
#include "http_routing.hpp"
#include "tandem/base/log.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// After answering with "close", the rest of what the client sent is read and dropped for a short while
// before the socket is closed: closing with unread data sends a RST, which can destroy the answer before
// the client reads it (a 413 while the client is still uploading).
constexpr std::chrono::milliseconds kMaxLinger{2000};
constexpr size_t kMaxLingerBytes = 1 << 20;
// A producer's Write blocks while this much is queued unsent (a slow client must not grow memory).
constexpr size_t kMaxQueuedStreamBytes = 1 << 20;
// While streaming, what the client sends is read ahead (that read is how its leaving is noticed) up to
// this much; the next request of a keep-alive connection fits.
constexpr size_t kPeerWatchReadBytes = 4096;
constexpr size_t kMaxReadAheadBytes = size_t{64} * 1024;
// Every answer to a request that could not be read is HTTP/1.1.
constexpr unsigned kHttp11 = 11;

void LogStreamError(const std::string& request_id, std::string error) {
  Log(LogLevel::kError, "http", "stream producer failed",
      {{"request_id", request_id}, {"error", std::move(error)}});
}

template <typename Stream>
Stream MakeStream(tcp::socket socket, ServerState& server) {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    return Stream(std::move(socket), *server.tls);
  } else {
    return Stream(std::move(socket));
  }
}

}  // namespace

InFlightRequest::InFlightRequest(ServerState& state) : state_(state) {
  std::lock_guard lock(state_.mutex);
  ++state_.in_flight;
}

InFlightRequest::~InFlightRequest() {
  std::lock_guard lock(state_.mutex);
  if (--state_.in_flight == 0) state_.idle.notify_all();
}

template <typename Stream>
StreamSession<Stream>::StreamSession(tcp::socket socket, std::shared_ptr<ServerState> server, bool reject)
    : stream_(MakeStream<Stream>(std::move(socket), *server)), server_(std::move(server)), reject_(reject) {}

template <typename Stream>
StreamSession<Stream>::~StreamSession() {
  std::lock_guard lock(server_->mutex);
  server_->sessions.erase(this);
  if (!reject_) --server_->active;
}

template <typename Stream>
void StreamSession<Stream>::Start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if constexpr (kTls) {
      self->Handshake();
    } else {
      self->Begin();
    }
  });
}

template <typename Stream>
void StreamSession<Stream>::Begin() {
  if (!reject_) return ReadRequest();
  Respond(OverloadedResponse(), GenerateRequestId(), /*keep_alive=*/false, kHttp11);
}

// ---- TLS -----------------------------------------------------------------------------------------------

template <typename Stream>
void StreamSession<Stream>::Handshake() {
  if constexpr (kTls) {
    state_ = State::kHandshaking;
    tcp().expires_after(options().request_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            beast::bind_front_handler(&StreamSession::OnHandshake, shared_from_this()));
  }
}

template <typename Stream>
void StreamSession<Stream>::OnHandshake(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    // Plain HTTP, a client certificate missing or not signed by the client CA, a scanner: this
    // connection only.
    if (options().tls_handshake_failures != nullptr) options().tls_handshake_failures->Increment();
    beast::error_code ignored;
    const tcp::endpoint peer = tcp().socket().remote_endpoint(ignored);
    Log(LogLevel::kWarn, "http", "TLS handshake failed",
        {{"peer", peer.address().to_string()}, {"error", ec.message()}});
    return CloseNow();
  }
  Begin();
}

// Says close_notify (so that a body ending with the connection is not taken for a truncated one) and
// waits, for the linger time at most, for the client's; then closes.
template <typename Stream>
void StreamSession<Stream>::ShutDownTls() {
  if constexpr (kTls) {
    tcp().expires_after(std::min<std::chrono::milliseconds>(options().request_timeout, kMaxLinger));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->CloseNow(); });
  }
}

template <typename Stream>
void StreamSession<Stream>::Close() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
}

template <typename Stream>
void StreamSession<Stream>::Drain() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (self->state_ == State::kReadingRequest && !self->parser_->got_some() && self->buffer_.size() == 0) {
      self->CloseNow();
    }
  });
}

// ---- a request and its whole answer --------------------------------------------------------------------

template <typename Stream>
void StreamSession<Stream>::ReadRequest() {
  // Idle keep-alive while draining: nobody is waiting for an answer, so close rather than wait.
  if (server_->draining && buffer_.size() == 0) return CloseNow();
  state_ = State::kReadingRequest;
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(
      std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
  parser_->body_limit(static_cast<uint64_t>(options().max_body_bytes));
  tcp().expires_after(options().request_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&StreamSession::OnRead, shared_from_this()));
}

template <typename Stream>
void StreamSession<Stream>::OnRead(beast::error_code ec, size_t /*bytes*/) {
  if (state_ == State::kClosed) return;
  if (!ec) {
    http::request<http::string_body> raw = parser_->release();
    parser_.reset();
    return SubmitRequest(std::move(raw));
  }
  const ReadFailure failure = ClassifyReadError(ec);
  if (failure == ReadFailure::kPeerGone) return CloseNow();
  const std::string request_id =
      parser_->is_header_done() ? RequestIdFrom(parser_->get().base()) : GenerateRequestId();
  Respond(ReadFailureResponse(failure, options(), ec.message()), request_id, /*keep_alive=*/false, kHttp11);
}

template <typename Stream>
void StreamSession<Stream>::SubmitRequest(http::request<http::string_body> raw) {
  const bool keep_alive = raw.keep_alive();
  const unsigned version = raw.version();
  if (server_->draining) {
    return Respond(ShuttingDownResponse(), RequestIdFrom(raw.base()), /*keep_alive=*/false, version);
  }
  state_ = State::kHandling;
  in_flight_.emplace(*server_);
  server_->pool.Submit(
      [self = shared_from_this(), request = ToHttpRequest(std::move(raw)), keep_alive, version] {
        HttpResponse response = Dispatch(self->server_->routes, request);
        asio::post(
            self->stream_.get_executor(),
            [self, response = std::move(response), request_id = request.request_id, keep_alive,
             version]() mutable { self->OnHandled(std::move(response), request_id, keep_alive, version); });
      });
}

template <typename Stream>
void StreamSession<Stream>::OnHandled(HttpResponse response, const std::string& request_id, bool keep_alive,
                                      unsigned version) {
  if (state_ == State::kClosed) {  // Stop, or the client left while the handler ran
    in_flight_.reset();
    return;
  }
  keep_alive = keep_alive && !server_->draining;
  if (response.stream && StatusHasBody(response.status)) {
    return StartStream(std::move(response), request_id, keep_alive, version);
  }
  Respond(std::move(response), request_id, keep_alive, version);
}

template <typename Stream>
void StreamSession<Stream>::Respond(HttpResponse response, const std::string& request_id, bool keep_alive,
                                    unsigned version) {
  state_ = State::kResponding;
  response_.emplace(ToBeastResponse(std::move(response), request_id, keep_alive, version));
  tcp().expires_after(options().request_timeout);
  http::async_write(stream_, *response_,
                    beast::bind_front_handler(&StreamSession::OnWrite, shared_from_this()));
}

template <typename Stream>
void StreamSession<Stream>::OnWrite(beast::error_code ec, size_t /*bytes*/) {
  const bool close = response_->need_eof();
  response_.reset();
  in_flight_.reset();
  if (state_ == State::kClosed) return;
  if (ec) return CloseNow();
  if (close) return LingerThenClose();
  ReadRequest();
}

// ---- a streamed answer ---------------------------------------------------------------------------------
// The header, then one chunk per piece the producer writes, then the last chunk; one write at a time. A
// raw read on the socket (WatchPeer) notices the client leaving meanwhile.

template <typename Stream>
void StreamSession<Stream>::StartStream(HttpResponse response, const std::string& request_id, bool keep_alive,
                                        unsigned version) {
  state_ = State::kStreaming;
  StreamedResponse& streamed = streamed_.emplace();
  streamed.chunked = version >= 11;
  streamed.close_after = !keep_alive || !streamed.chunked;
  SetResponseHeader(streamed.header.base(), response, request_id, version);
  streamed.header.keep_alive(!streamed.close_after);
  if (streamed.chunked) streamed.header.chunked(true);
  streamed.serializer.emplace(streamed.header);
  auto wake = [weak = weak_from_this()] {
    if (auto self = weak.lock()) asio::post(self->stream_.get_executor(), [self] { self->Pump(); });
  };
  streamed.queue =
      std::make_shared<ResponseStreamQueue>(kMaxQueuedStreamBytes, server_->stopping, std::move(wake));
  beast::error_code ignored;  // tokens are small writes: do not let Nagle hold them back
  tcp().socket().set_option(tcp::no_delay(true), ignored);
  write_pending_ = true;
  tcp().expires_after(options().request_timeout);
  http::async_write_header(stream_, *streamed.serializer,
                           beast::bind_front_handler(&StreamSession::OnPieceWritten, shared_from_this()));
  WatchPeer();
  RunProducer(std::move(response.stream), request_id);
}

template <typename Stream>
void StreamSession<Stream>::RunProducer(std::function<void(ResponseStream&)> producer,
                                        const std::string& request_id) {
  server_->pool.Submit(
      [self = shared_from_this(), queue = streamed_->queue, producer = std::move(producer), request_id] {
        bool failed = false;
        try {
          producer(*queue);
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

template <typename Stream>
void StreamSession<Stream>::Pump() {
  if ((state_ != State::kStreaming && state_ != State::kFinishingStream) || write_pending_) return;
  if (std::optional<std::string> piece = streamed_->queue->TakeNext()) return WritePiece(std::move(*piece));
  if (state_ != State::kFinishingStream) return;  // the producer will write more
  if (!streamed_->chunked) return EndStream();
  WriteLastChunk();
}

template <typename Stream>
void StreamSession<Stream>::WritePiece(std::string piece) {
  streamed_->piece = std::move(piece);
  write_pending_ = true;
  tcp().expires_after(options().request_timeout);
  auto on_written = beast::bind_front_handler(&StreamSession::OnPieceWritten, shared_from_this());
  if (streamed_->chunked) {
    asio::async_write(stream_, http::make_chunk(asio::buffer(streamed_->piece)), std::move(on_written));
  } else {
    asio::async_write(stream_, asio::buffer(streamed_->piece), std::move(on_written));
  }
}

template <typename Stream>
void StreamSession<Stream>::WriteLastChunk() {
  write_pending_ = true;
  tcp().expires_after(options().request_timeout);
  asio::async_write(stream_, http::make_chunk_last(),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->write_pending_ = false;
                      if (self->state_ == State::kClosed) return;
                      if (ec) return self->CloseNow();
                      self->EndStream();
                    });
}

template <typename Stream>
void StreamSession<Stream>::OnPieceWritten(beast::error_code ec, size_t /*bytes*/) {
  write_pending_ = false;
  streamed_->queue->Written(streamed_->piece.size());
  streamed_->piece.clear();
  if (state_ == State::kClosed) return;
  if (ec) return CloseNow();  // the producer learns it from Write; the session ends once it returns
  Pump();
}

template <typename Stream>
void StreamSession<Stream>::OnProducerDone(bool failed) {
  if (state_ == State::kClosed) return;
  // No last chunk after a failure: the client must see the body cut off, not complete.
  if (failed) return CloseNow();
  state_ = State::kFinishingStream;
  Pump();
}

template <typename Stream>
void StreamSession<Stream>::EndStream() {
  state_ = State::kEndingStream;
  in_flight_.reset();
  if (watch_pending_) {
    // OnPeerRead goes on once the watch is cancelled (no write is pending now).
    beast::error_code ignored;
    tcp().socket().cancel(ignored);
    return;
  }
  AfterStream();
}

template <typename Stream>
void StreamSession<Stream>::AfterStream() {
  const bool close = streamed_->close_after;
  streamed_.reset();
  if (close) return LingerThenClose();
  ReadRequest();
}

// Reads without a deadline (a generation may take minutes) into buffer_, so that a request the client
// pipelines is kept for the next ReadRequest: on the bare socket, or through TLS with the tcp_stream's
// read deadline lifted (expires_never leaves a pending write's deadline alone; every write sets its own).
template <typename Stream>
void StreamSession<Stream>::WatchPeer() {
  watch_pending_ = true;
  auto on_read = beast::bind_front_handler(&StreamSession::OnPeerRead, shared_from_this());
  if constexpr (kTls) {
    tcp().expires_never();
    stream_.async_read_some(buffer_.prepare(kPeerWatchReadBytes), std::move(on_read));
  } else {
    tcp().socket().async_read_some(buffer_.prepare(kPeerWatchReadBytes), std::move(on_read));
  }
}

template <typename Stream>
void StreamSession<Stream>::OnPeerRead(beast::error_code ec, size_t bytes) {
  watch_pending_ = false;
  if (!ec) buffer_.commit(bytes);
  switch (state_) {
    case State::kStreaming:
    case State::kFinishingStream:
      if (ec) return CloseNow();  // end of stream or reset: the client is gone
      if (buffer_.size() < kMaxReadAheadBytes) WatchPeer();
      return;
    case State::kEndingStream:  // the stream has ended and cancelled this read (or data came in just before)
      if (ec && ec != asio::error::operation_aborted) return CloseNow();
      return AfterStream();
    default:
      return;  // closed
  }
}

// ---- closing -------------------------------------------------------------------------------------------

template <typename Stream>
void StreamSession<Stream>::LingerThenClose() {
  state_ = State::kLingering;
  if constexpr (kTls) return ShutDownTls();
  beast::error_code ignored;
  tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  tcp().expires_after(std::min<std::chrono::milliseconds>(options().request_timeout, kMaxLinger));
  linger_buffer_.resize(4096);
  ReadAndDrop();
}

template <typename Stream>
void StreamSession<Stream>::ReadAndDrop() {
  stream_.async_read_some(asio::buffer(linger_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->lingered_bytes_ += bytes;
                            if (ec || self->lingered_bytes_ > kMaxLingerBytes) return self->CloseNow();
                            self->ReadAndDrop();
                          });
}

template <typename Stream>
void StreamSession<Stream>::CloseNow() {
  state_ = State::kClosed;
  if (streamed_) streamed_->queue->MarkGone();
  beast::error_code ignored;
  tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp().close();
}

template class StreamSession<PlainStream>;
template class StreamSession<TlsStream>;

std::shared_ptr<Session> MakeSession(tcp::socket socket, std::shared_ptr<ServerState> server, bool reject) {
  ServerState& state = *server;
  std::shared_ptr<Session> session;
  if (state.tls) {
    session = std::make_shared<StreamSession<TlsStream>>(std::move(socket), std::move(server), reject);
  } else {
    session = std::make_shared<StreamSession<PlainStream>>(std::move(socket), std::move(server), reject);
  }
  state.sessions.emplace(session.get(), session);
  return session;
}

}  // namespace tandem::services
