// One HTTP connection of the server, as a state machine: read a request, hand it to a handler thread,
// write the answer (whole, or streamed as its producer writes it), then read the next one while
// keep-alive lasts; or answer with close, linger and close. ServerState is what the acceptor and every
// session share.
//
// A session is a template on its stream, plain TCP (beast::tcp_stream) or TLS over it
// (beast::ssl_stream<tcp_stream>): the TLS one does its handshake first and says close_notify before it
// closes; everything else is the same code.
//
// Threads: a session runs on its connection's strand (an io thread); handlers and producers run on the
// HandlerPool and come back to the strand by posting. Start, Close and Drain may be called from any
// thread. Failures (a read or write error, a timeout, the client leaving) close the connection; a
// producer learns it from ResponseStream::Write / ClientGone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "handler_pool.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/response_stream_queue.hpp"

namespace tandem::services {

class Session;

// Sessions hold it by shared_ptr, so it outlives them however the io_context is torn down. The pool is
// shut down by the server's Stop before the server lets go of it, so it is never destroyed on one of its
// own threads.
struct ServerState {
  ServerState(HttpServerOptions options_in, std::vector<Route> routes_in,
              std::shared_ptr<boost::asio::ssl::context> tls_in)
      : options(std::move(options_in)),
        routes(std::move(routes_in)),
        tls(std::move(tls_in)),
        pool(options.handler_threads) {}

  const HttpServerOptions options;
  const std::vector<Route> routes;
  const std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  HandlerPool pool;

  std::atomic<bool> draining = false;  // set under mutex
  std::atomic<bool> stopping = false;  // set under mutex
  std::mutex mutex;
  std::condition_variable idle;  // notified when in_flight drops to 0, and on Stop
  int active = 0;                // sessions being served (not rejected); guarded by mutex
  int in_flight = 0;             // requests dispatched and not yet fully answered; guarded by mutex
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // every open session; guarded by mutex
};

// One request counted in ServerState::in_flight from dispatch until its answer is out (or the session
// ends): the count goes down when this is destroyed.
class InFlightRequest {
 public:
  explicit InFlightRequest(ServerState& state);
  ~InFlightRequest();
  InFlightRequest(const InFlightRequest&) = delete;
  InFlightRequest& operator=(const InFlightRequest&) = delete;

 private:
  ServerState& state_;
};

// A session's streamed answer being sent, from its header to the last chunk. (Outside Session: a nested
// struct with member initializers is not default-constructible for std::optional inside it, says clang.)
struct StreamedResponse {
  boost::beast::http::response<boost::beast::http::empty_body> header;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>> serializer;
  std::shared_ptr<ResponseStreamQueue> queue;  // shared with the producer
  std::string piece;                           // the piece being written
  bool chunked = false;                        // HTTP/1.0 has no chunks: the body ends with the connection
  bool close_after = false;
};

// What the server holds of a session, whatever its stream.
class Session {
 public:
  virtual ~Session() = default;
  virtual void Start() = 0;
  // Pending reads and writes complete with an error, a producer sees the client gone and the session ends.
  virtual void Close() = 0;
  // Closes the connection if it waits for a request of which nothing has arrived. The server is
  // draining, which the session checks at every other step.
  virtual void Drain() = 0;
};

// A new session on `socket`, plain or TLS as the server is; `reject`: over max_connections, answer 503
// and close. Registered in server->sessions; the caller holds server->mutex.
std::shared_ptr<Session> MakeSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> server,
                                     bool reject);

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

template <typename Stream>
class StreamSession final : public Session, public std::enable_shared_from_this<StreamSession<Stream>> {
 public:
  StreamSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state, bool reject);
  ~StreamSession() override;

  void Start() override;
  void Close() override;
  void Drain() override;

 private:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<StreamSession<Stream>>::shared_from_this;
  using std::enable_shared_from_this<StreamSession<Stream>>::weak_from_this;

  // accepted → reading → handling → responding, or streaming → finishing → ending; then reading again
  // (keep-alive) or lingering → closed. Over max_connections, and for a request that is malformed, too
  // large or arrives while draining: → responding (an error, then close). From any state → closed: an
  // error, a timeout, the client leaving, Stop (or Drain on an idle connection).
  enum class State {
    kAccepted,         // Start has not run yet
    kHandshaking,      // TLS only: the handshake runs
    kReadingRequest,   // a request is being read, or awaited on an idle keep-alive connection
    kHandling,         // the request is with a handler thread
    kResponding,       // a whole answer is being written
    kStreaming,        // a streamed answer: the producer runs, its pieces are written as they come
    kFinishingStream,  // the producer has returned: the pieces left, then the last chunk
    kEndingStream,     // the body is out; the peer watch read has been cancelled and is still to come back
    kLingering,        // answered with close: what the client still sends is read and dropped
    kClosed,           // the socket is closed; nothing more is sent
  };

  const HttpServerOptions& options() const { return server_->options; }
  boost::beast::tcp_stream& tcp() { return boost::beast::get_lowest_layer(stream_); }

  void Handshake();
  void OnHandshake(boost::beast::error_code ec);
  void Begin();  // after the handshake: the first request, or the 503 of a rejected connection

  void ReadRequest();
  void OnRead(boost::beast::error_code ec, size_t bytes);
  void SubmitRequest(boost::beast::http::request<boost::beast::http::string_body> raw);
  void OnHandled(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version);
  void Respond(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version);
  void OnWrite(boost::beast::error_code ec, size_t bytes);

  void StartStream(HttpResponse response, const std::string& request_id, bool keep_alive, unsigned version);
  void RunProducer(std::function<void(ResponseStream&)> producer, const std::string& request_id);
  void Pump();
  void WritePiece(std::string piece);
  void WriteLastChunk();
  void OnPieceWritten(boost::beast::error_code ec, size_t bytes);
  void OnProducerDone(bool failed);
  void EndStream();
  void AfterStream();
  // Reads while streaming: how the client's leaving is noticed.
  void WatchPeer();
  void OnPeerRead(boost::beast::error_code ec, size_t bytes);

  void LingerThenClose();
  void ShutDownTls();
  void ReadAndDrop();
  void CloseNow();

  Stream stream_;
  const std::shared_ptr<ServerState> server_;
  const bool reject_;
  State state_ = State::kAccepted;
  boost::beast::flat_buffer buffer_;  // persists across requests: it may hold the start of a pipelined one
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;  // one request
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> response_;  // until written
  std::optional<StreamedResponse> streamed_;
  std::optional<InFlightRequest> in_flight_;  // after server_: it counts down there
  // Outstanding operations beside the state: one write at a time, and the peer watch read while streaming.
  bool write_pending_ = false;
  bool watch_pending_ = false;
  std::vector<char> linger_buffer_;
  size_t lingered_bytes_ = 0;
};

}  // namespace tandem::services
