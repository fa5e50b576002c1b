#include "http_session.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>
#include <utility>

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

}  // namespace

InFlightRequest::InFlightRequest(ServerState& state) : state_(state) {
  std::lock_guard lock(state_.mutex);
  ++state_.in_flight;
}

InFlightRequest::~InFlightRequest() {
  std::lock_guard lock(state_.mutex);
  if (--state_.in_flight == 0) state_.idle.notify_all();
}

Session::Session(tcp::socket socket, std::shared_ptr<ServerState> server, bool reject)
    : stream_(std::move(socket)), server_(std::move(server)), reject_(reject) {}

Session::~Session() {
  std::lock_guard lock(server_->mutex);
  server_->sessions.erase(this);
  if (!reject_) --server_->active;
}

void Session::Start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->reject_) return self->ReadRequest();
    self->Respond(OverloadedResponse(), GenerateRequestId(), /*keep_alive=*/false, kHttp11);
  });
}

void Session::Close() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
}

void Session::Drain() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (self->state_ == State::kReadingRequest && !self->parser_->got_some() && self->buffer_.size() == 0) {
      self->CloseNow();
    }
  });
}

// ---- a request and its whole answer --------------------------------------------------------------------

void Session::ReadRequest() {
  // Idle keep-alive while draining: nobody is waiting for an answer, so close rather than wait.
  if (server_->draining && buffer_.size() == 0) return CloseNow();
  state_ = State::kReadingRequest;
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(
      std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
  parser_->body_limit(static_cast<uint64_t>(options().max_body_bytes));
  stream_.expires_after(options().request_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&Session::OnRead, shared_from_this()));
}

void Session::OnRead(beast::error_code ec, size_t /*bytes*/) {
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

void Session::SubmitRequest(http::request<http::string_body> raw) {
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

void Session::OnHandled(HttpResponse response, const std::string& request_id, bool keep_alive,
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

void Session::Respond(HttpResponse response, const std::string& request_id, bool keep_alive,
                      unsigned version) {
  state_ = State::kResponding;
  response_.emplace(ToBeastResponse(std::move(response), request_id, keep_alive, version));
  stream_.expires_after(options().request_timeout);
  http::async_write(stream_, *response_, beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
}

void Session::OnWrite(beast::error_code ec, size_t /*bytes*/) {
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

void Session::StartStream(HttpResponse response, const std::string& request_id, bool keep_alive,
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
  stream_.socket().set_option(tcp::no_delay(true), ignored);
  write_pending_ = true;
  stream_.expires_after(options().request_timeout);
  http::async_write_header(stream_, *streamed.serializer,
                           beast::bind_front_handler(&Session::OnPieceWritten, shared_from_this()));
  WatchPeer();
  RunProducer(std::move(response.stream), request_id);
}

void Session::RunProducer(std::function<void(ResponseStream&)> producer, const std::string& request_id) {
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

void Session::Pump() {
  if ((state_ != State::kStreaming && state_ != State::kFinishingStream) || write_pending_) return;
  if (std::optional<std::string> piece = streamed_->queue->TakeNext()) return WritePiece(std::move(*piece));
  if (state_ != State::kFinishingStream) return;  // the producer will write more
  if (!streamed_->chunked) return EndStream();
  WriteLastChunk();
}

void Session::WritePiece(std::string piece) {
  streamed_->piece = std::move(piece);
  write_pending_ = true;
  stream_.expires_after(options().request_timeout);
  auto on_written = beast::bind_front_handler(&Session::OnPieceWritten, shared_from_this());
  if (streamed_->chunked) {
    asio::async_write(stream_, http::make_chunk(asio::buffer(streamed_->piece)), std::move(on_written));
  } else {
    asio::async_write(stream_, asio::buffer(streamed_->piece), std::move(on_written));
  }
}

void Session::WriteLastChunk() {
  write_pending_ = true;
  stream_.expires_after(options().request_timeout);
  asio::async_write(stream_, http::make_chunk_last(),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->write_pending_ = false;
                      if (self->state_ == State::kClosed) return;
                      if (ec) return self->CloseNow();
                      self->EndStream();
                    });
}

void Session::OnPieceWritten(beast::error_code ec, size_t /*bytes*/) {
  write_pending_ = false;
  streamed_->queue->Written(streamed_->piece.size());
  streamed_->piece.clear();
  if (state_ == State::kClosed) return;
  if (ec) return CloseNow();  // the producer learns it from Write; the session ends once it returns
  Pump();
}

void Session::OnProducerDone(bool failed) {
  if (state_ == State::kClosed) return;
  // No last chunk after a failure: the client must see the body cut off, not complete.
  if (failed) return CloseNow();
  state_ = State::kFinishingStream;
  Pump();
}

void Session::EndStream() {
  state_ = State::kEndingStream;
  in_flight_.reset();
  if (watch_pending_) {
    // OnPeerRead goes on once the watch is cancelled (no write is pending now).
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  AfterStream();
}

void Session::AfterStream() {
  const bool close = streamed_->close_after;
  streamed_.reset();
  if (close) return LingerThenClose();
  ReadRequest();
}

// Reads on the bare socket (no tcp_stream deadline: a generation may take minutes), into buffer_, so that
// a request the client pipelines is kept for the next ReadRequest.
void Session::WatchPeer() {
  watch_pending_ = true;
  stream_.socket().async_read_some(buffer_.prepare(kPeerWatchReadBytes),
                                   beast::bind_front_handler(&Session::OnPeerRead, shared_from_this()));
}

void Session::OnPeerRead(beast::error_code ec, size_t bytes) {
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

void Session::LingerThenClose() {
  state_ = State::kLingering;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(std::min<std::chrono::milliseconds>(options().request_timeout, kMaxLinger));
  linger_buffer_.resize(4096);
  ReadAndDrop();
}

void Session::ReadAndDrop() {
  stream_.async_read_some(asio::buffer(linger_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->lingered_bytes_ += bytes;
                            if (ec || self->lingered_bytes_ > kMaxLingerBytes) return self->CloseNow();
                            self->ReadAndDrop();
                          });
}

void Session::CloseNow() {
  state_ = State::kClosed;
  if (streamed_) streamed_->queue->MarkGone();
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

}  // namespace tandem::services
