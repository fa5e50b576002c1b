#include "tandem/cloud/tail_server.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "tandem/base/log.hpp"
#include "tandem/wire/curve.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/engine/transformer.hpp"

namespace tandem::cloud {
namespace {

using Clock = std::chrono::steady_clock;
using wire::ErrorCode;
using wire::MessageType;

constexpr const char* kRepliesEndpoint = "inproc://tandem-tail-replies";
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kSweepInterval = std::chrono::seconds(1);
constexpr int kMaxMessagesPerWakeup = 64;  // then serve the other socket: neither side starves

// The tail's Prometheus metrics; prometheus-cpp metrics are safe to update from any thread.
struct Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : messages(prometheus::BuildCounter()
                     .Name("tandem_cloud_messages_total")
                     .Help("Wire messages by direction (in, out) and type")
                     .Register(registry)),
        activation_bytes(prometheus::BuildCounter()
                             .Name("tandem_cloud_activation_bytes_total")
                             .Help("Boundary activations received: float32 (before the codec) and wire "
                                   "(codec payload, after compression)")
                             .Register(registry)),
        float32_bytes(activation_bytes.Add({{"stage", "float32"}})),
        wire_bytes(activation_bytes.Add({{"stage", "wire"}})),
        tokens(prometheus::BuildCounter()
                   .Name("tandem_cloud_tokens_total")
                   .Help("Tokens sampled and sent")
                   .Register(registry)
                   .Add({})),
        compute_seconds(prometheus::BuildHistogram()
                            .Name("tandem_cloud_token_compute_seconds")
                            .Help("Cloud compute per ACTIVATIONS: decode, blocks [k, L), head, sampling (a batched step: "
                                  "its batch's)")
                            .Register(registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001,
                                                                             0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                             0.1, 0.25, 0.5, 1, 2.5})),
        batch_steps(prometheus::BuildHistogram()
                        .Name("tandem_cloud_batch_steps")
                        .Help("Steps a worker ran together, per pass (continuous batching; 1: alone, as a "
                              "prefill always is)")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64})),
        sessions(prometheus::BuildGauge()
                     .Name("tandem_cloud_sessions")
                     .Help("Open sessions")
                     .Register(registry)
                     .Add({})),
        queue_depth(prometheus::BuildGauge()
                        .Name("tandem_cloud_queue_depth")
                        .Help("ACTIVATIONS waiting for a worker")
                        .Register(registry)
                        .Add({})),
        kv_bytes(prometheus::BuildGauge()
                     .Name("tandem_cloud_kv_cache_bytes")
                     .Help("KV-cache memory reserved by open sessions")
                     .Register(registry)
                     .Add({})),
        errors(prometheus::BuildCounter()
                   .Name("tandem_cloud_errors_total")
                   .Help("ERROR replies by code")
                   .Register(registry)),
        sessions_expired(prometheus::BuildCounter()
                             .Name("tandem_cloud_sessions_expired_total")
                             .Help("Sessions freed after the idle timeout")
                             .Register(registry)
                             .Add({})),
        resends(prometheus::BuildCounter()
                    .Name("tandem_cloud_step_resends_total")
                    .Help("ACTIVATIONS an edge sent again (answered from the last reply, not computed)")
                    .Register(registry)
                    .Add({})),
        auth(prometheus::BuildCounter()
                 .Name("tandem_cloud_auth_total")
                 .Help("CURVE client authentications by result (admitted, denied)")
                 .Register(registry)) {
    // One counter per (direction, type), made once: counting a message is then an array index, not a
    // label-map lookup under the family's lock on every token.
    for (int type = 1; type < kMessageTypes; ++type) {
      const std::string name(wire::MessageTypeName(static_cast<MessageType>(type)));
      messages_in[type] = &messages.Add({{"direction", "in"}, {"type", name}});
      messages_out[type] = &messages.Add({{"direction", "out"}, {"type", name}});
    }
    // The other label values known up front start at 0 too, so rate() and increase() see the first event.
    for (auto code = static_cast<uint16_t>(wire::ErrorCode::kBadFrame);
         code <= static_cast<uint16_t>(wire::ErrorCode::kUnsupported); ++code) {
      errors.Add({{"code", std::string(wire::ErrorCodeName(static_cast<wire::ErrorCode>(code)))}});
    }
    for (const char* result : {"admitted", "denied"}) auth.Add({{"result", result}});
  }

  void CountIn(MessageType type) { messages_in[static_cast<size_t>(type)]->Increment(); }
  void CountOut(MessageType type) { messages_out[static_cast<size_t>(type)]->Increment(); }

  static constexpr int kMessageTypes = static_cast<int>(wire::kLastMessageType) + 1;
  std::array<prometheus::Counter*, kMessageTypes> messages_in{};
  std::array<prometheus::Counter*, kMessageTypes> messages_out{};

  prometheus::Family<prometheus::Counter>& messages;
  prometheus::Family<prometheus::Counter>& activation_bytes;
  prometheus::Counter& float32_bytes;
  prometheus::Counter& wire_bytes;
  prometheus::Counter& tokens;
  prometheus::Histogram& compute_seconds;
  prometheus::Histogram& batch_steps;
  prometheus::Gauge& sessions;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& kv_bytes;
  prometheus::Family<prometheus::Counter>& errors;
  prometheus::Counter& sessions_expired;
  prometheus::Counter& resends;
  prometheus::Family<prometheus::Counter>& auth;
};

struct Session {
  std::string peer;
  uint64_t id = 0;
  uint64_t serial = 0;  // unique per OPEN: a reused (peer, id) must not receive the old session's replies
  int worker = 0;
  int64_t kv_bytes = 0;
  uint32_t capacity = 0;
  ActivationCodec codec;  // from OPEN: every ACTIVATIONS (and ROWS) uses its precision
  // Used by the session's worker only: the tail (blocks [cut, L), head, sampling; answers TOKEN), or for a
  // private-output session the middle (blocks [cut, end_block); answers ROWS).
  std::unique_ptr<LocalTail> tail;
  std::unique_ptr<LocalMiddle> middle;

  // I/O thread only.
  uint64_t next_sequence = 0;
  uint32_t next_position = 0;
  int in_flight = 0;
  Clock::time_point last_active;
  // The last step, so that an edge that lost its reply can send it again: the digest of its ACTIVATIONS
  // and, once computed, its TOKEN.
  uint64_t last_step_digest = 0;
  std::optional<wire::Message> last_reply;
};

struct Job {
  std::shared_ptr<Session> session;
  wire::Message message;
};

// One worker's queue: sessions pinned to it run in arrival order.
struct WorkQueue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Job> jobs;
};

wire::Message ErrorMessage(uint64_t session, uint64_t sequence, ErrorCode code, std::string text,
                           bool retryable = false) {
  return wire::MakeError({.session = session,
                          .sequence = sequence,
                          .code = code,
                          .retryable = retryable,
                          .message = std::move(text)});
}

// Identifies an ACTIVATIONS by everything the step depends on. Not a MAC (CURVE authenticates the peer);
// it only tells an edge's resend from a different step under a reused sequence number.
uint64_t StepDigest(const wire::Message& message) {
  const wire::Header& header = message.header;
  const std::string_view payload(reinterpret_cast<const char*>(message.payload.data()),
                                 message.payload.size());
  uint64_t digest = std::hash<std::string_view>{}(payload);
  for (const uint64_t field : {uint64_t{header.position}, uint64_t{header.rows}, uint64_t{header.cols},
                               uint64_t{header.precision}, uint64_t{header.compression}}) {
    digest = (digest ^ field) * 0x100000001b3ULL;  // FNV-1a's prime: mixes each field in
  }
  return digest;
}

std::string BindAddress(std::string bind) {
  // ZeroMQ spells "any free port" as '*'; accept the usual ":0" too.
  if (bind.size() > 2 && bind.ends_with(":0")) bind.replace(bind.size() - 1, 1, "*");
  return bind;
}

}  // namespace

class TailServer::Impl {
 public:
  Impl(std::shared_ptr<const Transformer> model, uint64_t fingerprint, TailServerOptions options,
       std::shared_ptr<prometheus::Registry> registry)
      : model_(std::move(model)),
        options_(std::move(options)),
        registry_(std::move(registry)),
        metrics_(*registry_),
        hello_(wire::DescribeModel(model_->config(), fingerprint, options_.block_fingerprints)),
        queues_(static_cast<size_t>(std::max(0, options_.workers))) {
    if (options_.max_rows <= 0) options_.max_rows = model_->config().seq_len;
    hello_.max_rows = static_cast<uint32_t>(options_.max_rows);
    hello_.max_sessions = static_cast<uint32_t>(options_.max_sessions);
    hello_.max_payload_bytes = static_cast<uint64_t>(options_.limits.max_message_bytes);
    const BlockRange held = model_->held_blocks();
    if (held.first != 0 || held.last != model_->n_layers() || !model_->holds_head()) {
      hello_.held_first = static_cast<uint32_t>(held.first);
      hello_.held_last = static_cast<uint32_t>(held.last);
    }
  }

  ~Impl() { Stop(); }

  Status Start() {
    try {
      if (!options_.security.insecure) {
        TANDEM_ASSIGN_OR_RETURN(
            zap_, ZapAuthenticator::Start(
                      context_, options_.allowed_clients,
                      [this](bool admitted, const std::string& key, const std::string& peer) {
                        metrics_.auth.Add({{"result", admitted ? "admitted" : "denied"}}).Increment();
                        if (!admitted) {
                          Log(LogLevel::kWarn, "cloud", "client refused by CURVE allow-list",
                              {{"client_key", key}, {"peer", peer}});
                        }
                      }));
      }
      router_ = zmq::socket_t(context_, zmq::socket_type::router);
      TANDEM_RETURN_IF_ERROR(ConfigureSocket(router_, options_.security, options_.limits, /*server=*/true));
      router_.bind(BindAddress(options_.bind));
      endpoint_ = router_.get(zmq::sockopt::last_endpoint);
      replies_ = zmq::socket_t(context_, zmq::socket_type::pull);
      replies_.set(zmq::sockopt::linger, 0);
      replies_.bind(kRepliesEndpoint);
    } catch (const zmq::error_t& error) {
      return Unavailable("cannot bind the tail at '" + options_.bind + "': " + error.what());
    }
    for (size_t i = 0; i < queues_.size(); ++i) workers_.emplace_back([this, i] { RunWorker(queues_[i]); });
    io_thread_ = std::thread([this] { RunIo(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    for (WorkQueue& queue : queues_) {
      const std::lock_guard lock(queue.mutex);
      queue.ready.notify_all();
    }
    for (std::thread& worker : workers_) worker.join();
    if (io_thread_.joinable()) io_thread_.join();
    router_.close();
    replies_.close();
    zap_.reset();
    context_.close();
  }

  void BeginDrain() { draining_ = true; }

  wire::TailStats Stats() const {
    return {.workers = static_cast<uint32_t>(std::max(1, options_.workers)),
            .sessions = static_cast<uint32_t>(open_sessions_.load()),
            .queue_depth = static_cast<uint32_t>(std::max(0, queued_.load())),
            .utilization = utilization_.load(),
            .free_kv_bytes = std::max<int64_t>(0, options_.max_kv_bytes - kv_bytes_.load()),
            .profile = options_.profile};
  }
  const std::string& endpoint() const { return endpoint_; }
  int64_t open_sessions() const { return open_sessions_.load(); }
  int64_t kv_cache_bytes() const { return kv_bytes_.load(); }

 private:
  // ---- I/O thread -------------------------------------------------------------------------------------

  void RunIo() {
    if (options_.workers == 0) at::init_num_threads();  // inline steps run here
    std::array<zmq::pollitem_t, 2> items = {
        {{router_.handle(), 0, ZMQ_POLLIN, 0}, {replies_.handle(), 0, ZMQ_POLLIN, 0}}};
    auto last_sweep = Clock::now();
    while (!stopping_.load()) {
      try {
        zmq::poll(items.data(), items.size(), kPollInterval);
        for (int i = 0; i < kMaxMessagesPerWakeup; ++i) {
          std::vector<zmq::message_t> frames = ReceiveMultipart(replies_);
          if (frames.empty()) break;
          ForwardReply(frames);
        }
        for (int i = 0; i < kMaxMessagesPerWakeup; ++i) {
          std::vector<zmq::message_t> frames = ReceiveMultipart(router_);
          if (frames.empty()) break;
          HandleIncoming(frames);
        }
      } catch (const zmq::error_t& error) {
        if (error.num() == ETERM) return;
        Log(LogLevel::kError, "cloud", "socket error", {{"error", error.what()}});
      }
      if (const auto now = Clock::now(); now - last_sweep > kSweepInterval) {
        ExpireIdle();
        MeasureUtilization(now - last_sweep);
        last_sweep = now;
      }
    }
  }

  void Reply(const std::string& peer, const wire::Message& message) {
    if (message.header.type == MessageType::kError) {
      if (auto error = wire::ParseError(message); error.ok()) {
        metrics_.errors.Add({{"code", std::string(wire::ErrorCodeName(error->code))}}).Increment();
      }
    }
    metrics_.CountOut(message.header.type);
    (void)SendMessage(router_, message, peer);  // a vanished peer's replies are dropped by ZeroMQ
  }

  // A worker's [peer + serial][header][payload]: settle the session's bookkeeping, then pass it on verbatim.
  // The serial tells the session that sent the step from a later one with the same id (CLOSE, then OPEN
  // again while the step ran): only the former's bookkeeping may change.
  void ForwardReply(std::vector<zmq::message_t>& frames) {
    if (frames.size() != 3 || frames[0].size() < sizeof(uint64_t)) return;
    const std::string route = frames[0].to_string();
    const std::string peer = route.substr(0, route.size() - sizeof(uint64_t));
    uint64_t serial = 0;
    std::memcpy(&serial, route.data() + peer.size(), sizeof(serial));
    auto message = ParseFrames(std::span(frames).subspan(1), SIZE_MAX);
    if (!message.ok()) return;
    SettleReply(peer, serial, *message);
  }

  // A step's TOKEN or ERROR: the session's bookkeeping, then the reply.
  void SettleReply(const std::string& peer, uint64_t serial, const wire::Message& message) {
    if (const auto it = sessions_.find({peer, message.header.session});
        it != sessions_.end() && it->second->serial == serial) {
      Session& session = *it->second;
      --session.in_flight;
      session.last_active = Clock::now();
      // A failed step leaves the session's cache behind its bookkeeping: it cannot go on.
      if (message.header.type == MessageType::kError) {
        EraseSession(it);
      } else if (message.header.sequence + 1 == session.next_sequence) {
        session.last_reply = message;
      }
    }
    Reply(peer, message);
  }

  void HandleIncoming(std::vector<zmq::message_t>& frames) {
    if (frames.size() < 2) return;  // nothing but a routing id
    const std::string peer = frames[0].to_string();
    auto parsed =
        ParseFrames(std::span(frames).subspan(1), static_cast<size_t>(options_.limits.max_message_bytes));
    if (!parsed.ok()) {
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kBadFrame, parsed.status().message()));
      return;
    }
    wire::Message& message = *parsed;
    const wire::Header& header = message.header;
    if (header.version != wire::kProtocolVersion) {
      Reply(peer, ErrorMessage(header.session, header.sequence, ErrorCode::kVersionMismatch,
                               "protocol version " + std::to_string(header.version) +
                                   " is not supported; this "
                                   "tail speaks version " +
                                   std::to_string(wire::kProtocolVersion)));
      return;
    }
    metrics_.CountIn(header.type);
    switch (header.type) {
      case MessageType::kHello:
        return HandleHello(peer, message);
      case MessageType::kPing:
        return HandlePing(peer, message);
      default:
        break;
    }
    const auto known = peers_.find(peer);
    if (known == peers_.end()) {
      Reply(peer, ErrorMessage(header.session, header.sequence, ErrorCode::kHandshakeRequired,
                               "send HELLO first on this connection"));
      return;
    }
    known->second = Clock::now();
    switch (header.type) {
      case MessageType::kOpen:
        return HandleOpen(peer, message);
      case MessageType::kActivations:
        return HandleActivations(peer, std::move(message));
      case MessageType::kClose:
        return HandleClose(peer, header.session);
      case MessageType::kStats:
        return Reply(peer, wire::MakeStats(Stats(), header.sequence));
      default:
        Reply(peer,
              ErrorMessage(header.session, header.sequence, ErrorCode::kUnsupported,
                           std::string(wire::MessageTypeName(header.type)) + " is not accepted by a tail"));
    }
  }

  void HandleHello(const std::string& peer, const wire::Message& message) {
    auto hello = wire::ParseHello(message);
    if (!hello.ok()) {
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kBadFrame, hello.status().message()));
      return;
    }
    if (Status same = wire::CheckSameModel(*hello, hello_); !same.ok()) {
      Log(LogLevel::kWarn, "cloud", "HELLO refused: another model",
          {{"edge_fingerprint", std::to_string(hello->fingerprint)},
           {"tail_fingerprint", std::to_string(hello_.fingerprint)},
           {"error", same.message()}});
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kFingerprintMismatch, same.message()));
      return;
    }
    if (draining_.load()) {
      Reply(peer,
            ErrorMessage(0, 0, ErrorCode::kOverloaded, "the tail is shutting down", /*retryable=*/true));
      return;
    }
    if (!peers_.contains(peer) && peers_.size() >= static_cast<size_t>(options_.max_peers) &&
        !ForgetIdlestPeer()) {
      Reply(peer, ErrorMessage(0, 0, ErrorCode::kOverloaded, "too many connections", /*retryable=*/true));
      return;
    }
    peers_[peer] = Clock::now();
    Reply(peer, wire::MakeHello(hello_));
  }

  void HandlePing(const std::string& peer, const wire::Message& message) {
    if (message.payload.size() > wire::kMaxPingBytes) {
      Reply(peer,
            ErrorMessage(0, message.header.sequence, ErrorCode::kTooLarge, "PING payload over 64 bytes"));
      return;
    }
    wire::Message pong = message;
    pong.header.type = MessageType::kPong;
    Reply(peer, pong);
  }

  void HandleOpen(const std::string& peer, const wire::Message& message) {
    const uint64_t id = message.header.session;
    auto open = wire::ParseOpen(message);
    if (!open.ok()) {
      Reply(peer, ErrorMessage(id, 0, ErrorCode::kBadArgument, open.status().message()));
      return;
    }
    const ModelConfig& config = model_->config();
    const auto refuse = [&](ErrorCode code, std::string text, bool retryable = false) {
      Reply(peer, ErrorMessage(id, 0, code, std::move(text), retryable));
    };
    if (id == 0) return refuse(ErrorCode::kBadArgument, "session id 0 is reserved");
    if (draining_.load())
      return refuse(ErrorCode::kOverloaded, "the tail is shutting down", /*retryable=*/true);
    if (open->cut < 0 || open->cut > config.n_layers) {
      return refuse(ErrorCode::kBadArgument, "cut " + std::to_string(open->cut) + " is outside [0, " +
                                                 std::to_string(config.n_layers) + "]");
    }
    const int end_block = open->private_output() ? open->end_block : config.n_layers;
    if (open->private_output() && (end_block <= open->cut || end_block > config.n_layers)) {
      return refuse(ErrorCode::kBadArgument, "end_block " + std::to_string(end_block) + " is outside [" +
                                                 std::to_string(open->cut + 1) + ", " +
                                                 std::to_string(config.n_layers) + "]");
    }
    // A block-range checkpoint runs what it holds, and answers TOKEN only with the head.
    const BlockRange held = model_->held_blocks();
    if (open->cut < end_block && (open->cut < held.first || end_block > held.last)) {
      return refuse(ErrorCode::kBadArgument, "this tail holds blocks " + std::to_string(held.first) + ":" +
                                                 std::to_string(held.last) + " only, not " +
                                                 std::to_string(open->cut) + ":" + std::to_string(end_block));
    }
    if (!open->private_output() && !model_->holds_head()) {
      return refuse(ErrorCode::kBadArgument, "this tail holds no head (blocks " + std::to_string(held.first) +
                                                 ":" + std::to_string(held.last) +
                                                 " only): open the session with end_block (private output)");
    }
    const uint32_t capacity =
        open->max_positions == 0 ? static_cast<uint32_t>(config.seq_len) : open->max_positions;
    if (capacity > static_cast<uint32_t>(config.seq_len)) {
      return refuse(ErrorCode::kBadArgument, "max_positions " + std::to_string(capacity) +
                                                 " exceeds the context length " +
                                                 std::to_string(config.seq_len));
    }
    if (sessions_.contains({peer, id})) return refuse(ErrorCode::kSessionExists, "session is already open");
    if (sessions_.size() >= static_cast<size_t>(options_.max_sessions)) {
      return refuse(ErrorCode::kOverloaded,
                    "the tail holds its maximum of " + std::to_string(options_.max_sessions) + " sessions",
                    /*retryable=*/true);
    }
    // K and V, float32, for every tail block and position the session may use.
    const int64_t kv_bytes = int64_t{2} * (end_block - open->cut) * config.kv_dim() * capacity * 4;
    if (kv_bytes_.load() + kv_bytes > options_.max_kv_bytes) {
      return refuse(ErrorCode::kOverloaded,
                    "KV-cache memory is full (" + std::to_string(kv_bytes_.load()) + " of " +
                        std::to_string(options_.max_kv_bytes) + " bytes in use)",
                    /*retryable=*/true);
    }
    auto session = std::make_shared<Session>();
    session->peer = peer;
    session->id = id;
    session->serial = ++next_serial_;
    session->worker = queues_.empty() ? 0 : static_cast<int>(next_worker_++ % queues_.size());
    session->kv_bytes = kv_bytes;
    session->capacity = capacity;
    session->codec = open->codec;
    session->last_active = Clock::now();
    try {
      if (open->private_output()) {
        session->middle =
            std::make_unique<LocalMiddle>(model_, open->cut, end_block, static_cast<int>(capacity));
      } else {
        session->tail = std::make_unique<LocalTail>(model_, open->cut, static_cast<int>(capacity),
                                                    open->sampling, open->top_logprobs);
      }
    } catch (const std::exception& error) {
      return refuse(ErrorCode::kInternal, std::string("cannot allocate the session: ") + error.what());
    }
    sessions_.emplace(std::make_pair(peer, id), std::move(session));
    kv_bytes_ += kv_bytes;
    ++open_sessions_;
    UpdateGauges();
  }

  void HandleActivations(const std::string& peer, wire::Message message) {
    const wire::Header& header = message.header;
    const auto refuse = [&](ErrorCode code, std::string text) {
      Reply(peer, ErrorMessage(header.session, header.sequence, code, std::move(text)));
    };
    const auto it = sessions_.find({peer, header.session});
    if (it == sessions_.end()) return refuse(ErrorCode::kUnknownSession, "no open session with this id");
    Session& session = *it->second;
    if (session.next_sequence > 0 && header.sequence == session.next_sequence - 1) {
      return AnswerResend(peer, session, message);
    }
    if (header.sequence != session.next_sequence) {
      // A gap, or a step before the last one: the edge only ever resends its last step.
      return refuse(ErrorCode::kOutOfOrder, "expected sequence " + std::to_string(session.next_sequence));
    }
    if (header.position != session.next_position) {
      return refuse(ErrorCode::kOutOfOrder, "expected position " + std::to_string(session.next_position));
    }
    if (header.cols != static_cast<uint32_t>(model_->config().dim)) {
      return refuse(ErrorCode::kBadArgument,
                    "rows must have " + std::to_string(model_->config().dim) + " columns");
    }
    if (header.rows == 0) return refuse(ErrorCode::kBadArgument, "no rows");
    if (header.rows > static_cast<uint32_t>(options_.max_rows)) {
      return refuse(ErrorCode::kTooLarge, "rows must be in [1, " + std::to_string(options_.max_rows) + "]");
    }
    if (uint64_t{header.position} + header.rows > session.capacity) {
      return refuse(ErrorCode::kTooLarge,
                    "the session holds " + std::to_string(session.capacity) + " positions");
    }
    if (!PrecisionFromWire(header.precision).ok() || !CompressionFromWire(header.compression).ok()) {
      return refuse(ErrorCode::kBadArgument, "unknown activation codec");
    }
    // The session's codec, or its precision sent uncompressed (when compressing did not pay).
    const auto precision = static_cast<Precision>(header.precision);
    const auto compression = static_cast<Compression>(header.compression);
    if (precision != session.codec.precision ||
        (compression != session.codec.compression && compression != Compression::kNone)) {
      return refuse(ErrorCode::kBadArgument, "the session was opened with codec " + session.codec.Name() +
                                                 ", not " + ActivationCodec{precision, compression}.Name());
    }
    ++session.next_sequence;
    session.next_position += header.rows;
    session.last_step_digest = StepDigest(message);
    session.last_reply.reset();
    ++session.in_flight;
    session.last_active = Clock::now();
    if (options_.workers == 0) {
      // Inline: no hand-over to a worker and back, at the price of holding every other message meanwhile.
      const Job job{it->second, std::move(message)};
      SettleReply(peer, job.session->serial, Execute(job));
      return;
    }
    WorkQueue& queue = queues_[static_cast<size_t>(session.worker)];
    {
      const std::lock_guard lock(queue.mutex);
      queue.jobs.push_back({it->second, std::move(message)});
    }
    metrics_.queue_depth.Increment();
    ++queued_;
    queue.ready.notify_one();
  }

  // The edge sent its last step again (its reply was lost, or late): steps are idempotent, so the same
  // rows get the same TOKEN, from the cache and without computing anything; while the step is still being
  // computed the resend is dropped, as its reply is on the way. The same sequence number with other rows
  // is refused: that is not a resend.
  void AnswerResend(const std::string& peer, Session& session, const wire::Message& message) {
    const wire::Header& header = message.header;
    if (StepDigest(message) != session.last_step_digest) {
      Reply(peer, ErrorMessage(header.session, header.sequence, ErrorCode::kOutOfOrder,
                               "sequence " + std::to_string(header.sequence) +
                                   " was already used for other rows; expected " +
                                   std::to_string(session.next_sequence)));
      return;
    }
    metrics_.resends.Increment();
    session.last_active = Clock::now();
    if (session.last_reply) Reply(peer, *session.last_reply);
  }

  void HandleClose(const std::string& peer, uint64_t id) {
    if (const auto it = sessions_.find({peer, id}); it != sessions_.end()) EraseSession(it);
  }

  using SessionMap = std::map<std::pair<std::string, uint64_t>, std::shared_ptr<Session>>;

  void EraseSession(SessionMap::iterator it) {
    // A worker still holding the session finishes its step; the reply then finds no session.
    kv_bytes_ -= it->second->kv_bytes;
    --open_sessions_;
    sessions_.erase(it);
    UpdateGauges();
  }

  // The workers' busy fraction since the last sweep: the load a planner inflates this tail's compute by.
  void MeasureUtilization(Clock::duration elapsed) {
    const int64_t busy = busy_us_.exchange(0);
    const double capacity_us =
        std::chrono::duration<double, std::micro>(elapsed).count() * std::max(1, options_.workers);
    utilization_ = static_cast<float>(std::clamp(busy / capacity_us, 0.0, 1.0));
  }

  void ExpireIdle() {
    const auto now = Clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      const Session& session = *it->second;
      if (session.in_flight == 0 && now - session.last_active > options_.idle_timeout) {
        Log(LogLevel::kInfo, "cloud", "idle session expired", {{"session", std::to_string(session.id)}});
        metrics_.sessions_expired.Increment();
        EraseSession(it++);
      } else {
        ++it;
      }
    }
  }

  // Makes room for a new connection by forgetting the least recently seen one without open sessions.
  // Connections are not expired on a timer: an edge may keep one open, idle, between requests.
  bool ForgetIdlestPeer() {
    auto idlest = peers_.end();
    for (auto it = peers_.begin(); it != peers_.end(); ++it) {
      const auto first_session = sessions_.lower_bound({it->first, 0});
      const bool has_sessions = first_session != sessions_.end() && first_session->first.first == it->first;
      if (!has_sessions && (idlest == peers_.end() || it->second < idlest->second)) idlest = it;
    }
    if (idlest == peers_.end()) return false;
    peers_.erase(idlest);
    return true;
  }

  void UpdateGauges() {
    metrics_.sessions.Set(static_cast<double>(open_sessions_.load()));
    metrics_.kv_bytes.Set(static_cast<double>(kv_bytes_.load()));
  }

  // ---- workers ----------------------------------------------------------------------------------------

  void RunWorker(WorkQueue& queue) {
    // OpenMP's thread count is per thread: take the process's (--threads) before the first product.
    at::init_num_threads();
    zmq::socket_t replies(context_, zmq::socket_type::push);
    replies.set(zmq::sockopt::linger, 0);
    replies.connect(kRepliesEndpoint);
    // Sessions that decoded in the last batch, plus any just prefilled: each is likely to send its next
    // step in a moment, so the next batch waits (a little) for them.
    size_t expected = 1;
    while (true) {
      std::vector<Job> jobs = TakeSteps(queue, expected);
      if (jobs.empty()) return;  // stopping
      metrics_.queue_depth.Decrement(static_cast<double>(jobs.size()));
      queued_ -= static_cast<int>(jobs.size());
      const bool alone = RunsAlone(jobs.front());
      expected = alone ? expected + 1 : jobs.size();
      const std::vector<wire::Message> answers = ExecuteAll(jobs);
      for (size_t i = 0; i < jobs.size(); ++i) {
        // The route back is the peer and the session's serial (see ForwardReply).
        std::string route = jobs[i].session->peer;
        route.append(reinterpret_cast<const char*>(&jobs[i].session->serial), sizeof(uint64_t));
        (void)SendMessage(replies, answers[i], route);
      }
    }
  }

  // Prefills run alone, and so do a private-output session's steps (a middle has no head to batch).
  static bool RunsAlone(const Job& job) { return job.message.header.rows > 1 || job.session->middle; }

  // The steps this worker runs next: the oldest queued step alone when it runs alone (RunsAlone); else
  // decode steps (one row) of up to max_batch sessions, each session's oldest only, so that its steps keep
  // their order. Waits up to max_batch_wait for `expected` of them. Empty when stopping.
  std::vector<Job> TakeSteps(WorkQueue& queue, size_t expected) {
    std::unique_lock lock(queue.mutex);
    queue.ready.wait(lock, [&] { return stopping_.load() || !queue.jobs.empty(); });
    if (stopping_.load()) return {};
    std::vector<Job> batch;
    if (RunsAlone(queue.jobs.front())) {
      batch.push_back(std::move(queue.jobs.front()));
      queue.jobs.pop_front();
      return batch;
    }
    const auto limit = static_cast<size_t>(std::max(1, options_.max_batch));
    const auto deadline = Clock::now() + options_.max_batch_wait;
    TakeDecodeSteps(queue.jobs, limit, batch);
    while (batch.size() < std::min(limit, expected) && !stopping_.load()) {
      const bool woken = queue.ready.wait_until(lock, deadline) == std::cv_status::no_timeout;
      TakeDecodeSteps(queue.jobs, limit, batch);  // after a timeout too: a step may have come meanwhile
      if (!woken) break;
    }
    return batch;
  }

  static void TakeDecodeSteps(std::deque<Job>& jobs, size_t limit, std::vector<Job>& batch) {
    // Sessions whose next step must not be taken: in the batch already, or queued behind one that runs
    // alone.
    std::vector<const Session*> held;
    for (const Job& job : batch) held.push_back(job.session.get());
    for (auto it = jobs.begin(); it != jobs.end() && batch.size() < limit;) {
      const Session* session = it->session.get();
      const bool free = std::find(held.begin(), held.end(), session) == held.end();
      held.push_back(session);
      if (free && !RunsAlone(*it)) {
        batch.push_back(std::move(*it));
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
  }

  // The answers to steps taken together, in order: one decode batch through the weights (a lone step runs
  // as it would unbatched).
  std::vector<wire::Message> ExecuteAll(std::vector<Job>& jobs) {
    if (jobs.size() == 1) return {Execute(jobs.front())};
    const auto start = Clock::now();
    std::vector<wire::Message> answers(jobs.size());
    std::vector<size_t> members;
    std::vector<LocalTail*> tails;
    std::vector<HiddenRows> rows;
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto decoded = DecodeStep(jobs[i]);
      if (!decoded.ok()) {
        answers[i] = StepError(jobs[i], ErrorCode::kBadFrame, decoded.status());
        continue;
      }
      members.push_back(i);
      tails.push_back(jobs[i].session->tail.get());
      rows.push_back(std::move(*decoded));
    }
    std::vector<Result<int>> tokens;
    try {
      tokens = LocalTail::ForwardDecodeBatch(tails, rows);
    } catch (const std::exception& error) {
      tokens.assign(tails.size(), Internal(error.what()));
    }
    const double seconds = FinishPass(start, members.size());
    for (size_t m = 0; m < members.size(); ++m) {
      answers[members[m]] = Answer(jobs[members[m]], tokens[m], seconds);
    }
    return answers;
  }

  wire::Message Execute(const Job& job) {
    const auto start = Clock::now();
    auto rows = DecodeStep(job);
    if (!rows.ok()) return StepError(job, ErrorCode::kBadFrame, rows.status());
    if (job.session->middle) return ExecuteMiddle(job, *rows, start);
    Result<int> token = Internal("not run");
    try {
      token = job.session->tail->Forward(*rows);
    } catch (const std::exception& error) {
      token = Internal(error.what());
    }
    return Answer(job, token, FinishPass(start, 1));
  }

  // A private-output step: the middle's blocks, then their rows back in the session's codec.
  wire::Message ExecuteMiddle(const Job& job, const HiddenRows& rows, Clock::time_point start) {
    Result<HiddenRows> out = Internal("not run");
    try {
      out = job.session->middle->ForwardRows(rows);
    } catch (const std::exception& error) {
      out = Internal(error.what());
    }
    if (!out.ok()) return StepError(job, ErrorCode::kInternal, out.status());
    const ActivationCodec codec = job.session->codec;
    auto encoded = EncodeActivations(out->values, out->rows, out->cols, codec);
    if (!encoded.ok()) return StepError(job, ErrorCode::kInternal, encoded.status());
    const double seconds = FinishPass(start, 1);
    metrics_.compute_seconds.Observe(seconds);
    const wire::Header& header = job.message.header;
    return wire::MakeRows({.session = header.session,
                           .sequence = header.sequence,
                           .position = header.position,
                           .rows = header.rows,
                           .cols = header.cols,
                           .codec = {codec.precision, encoded->compression},
                           .compute_us = static_cast<uint32_t>(seconds * 1e6),
                           .payload = std::move(encoded->payload)});
  }

  // A step's rows from its payload (the I/O thread checked the header against the session).
  Result<HiddenRows> DecodeStep(const Job& job) {
    const wire::Header& header = job.message.header;
    const ActivationCodec codec{static_cast<Precision>(header.precision),
                                static_cast<Compression>(header.compression)};
    const int64_t rows = header.rows, cols = header.cols;
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> values,
                            DecodeActivations(job.message.payload, rows, cols, codec, rows * cols));
    metrics_.wire_bytes.Increment(static_cast<double>(job.message.payload.size()));
    metrics_.float32_bytes.Increment(static_cast<double>(rows * cols * 4));
    return HiddenRows{rows, cols, std::move(values)};
  }

  // Accounts a worker pass of `steps` steps begun at `start`; returns its seconds.
  double FinishPass(Clock::time_point start, size_t steps) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    busy_us_ += static_cast<int64_t>(seconds * 1e6);
    metrics_.batch_steps.Observe(static_cast<double>(steps));
    return seconds;
  }

  static wire::Message StepError(const Job& job, ErrorCode code, const Status& status) {
    return ErrorMessage(job.message.header.session, job.message.header.sequence, code, status.message());
  }

  // The TOKEN of a computed step, or its ERROR.
  wire::Message Answer(const Job& job, const Result<int>& token, double seconds) {
    if (!token.ok()) return StepError(job, ErrorCode::kInternal, token.status());
    metrics_.tokens.Increment();
    metrics_.compute_seconds.Observe(seconds);
    return wire::MakeToken({.session = job.message.header.session,
                            .sequence = job.message.header.sequence,
                            .token = *token,
                            .compute_us = static_cast<uint32_t>(seconds * 1e6),
                            .top_logprobs = job.session->tail->top_logprobs()});
  }

  std::shared_ptr<const Transformer> model_;
  TailServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  Metrics metrics_;
  wire::Hello hello_;

  zmq::context_t context_;
  std::unique_ptr<ZapAuthenticator> zap_;
  zmq::socket_t router_;
  zmq::socket_t replies_;
  std::string endpoint_;

  std::vector<WorkQueue> queues_;
  std::vector<std::thread> workers_;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};

  // I/O thread only.
  SessionMap sessions_;
  std::unordered_map<std::string, Clock::time_point> peers_;  // connections past HELLO, last seen
  uint64_t next_worker_ = 0;
  uint64_t next_serial_ = 0;

  std::atomic<int64_t> open_sessions_{0};
  std::atomic<int64_t> kv_bytes_{0};
  std::atomic<int> queued_{0};
  std::atomic<int64_t> busy_us_{0};  // step compute since the last utilization sweep, all workers
  std::atomic<float> utilization_{0};
};

TailServer::TailServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TailServer::~TailServer() = default;

Result<std::unique_ptr<TailServer>> TailServer::Start(std::shared_ptr<const Transformer> model,
                                                      uint64_t fingerprint, TailServerOptions options,
                                                      std::shared_ptr<prometheus::Registry> registry) {
  if (!options.security.insecure && options.allowed_clients.empty()) {
    return InvalidArgument("a CURVE tail needs at least one allowed client key (--allow-clients)");
  }
  auto impl = std::make_unique<Impl>(std::move(model), fingerprint, std::move(options), std::move(registry));
  TANDEM_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<TailServer>(new TailServer(std::move(impl)));
}

const std::string& TailServer::endpoint() const {
  return impl_->endpoint();
}
int64_t TailServer::open_sessions() const {
  return impl_->open_sessions();
}
int64_t TailServer::kv_cache_bytes() const {
  return impl_->kv_cache_bytes();
}
wire::TailStats TailServer::Stats() const {
  return impl_->Stats();
}
void TailServer::BeginDrain() {
  impl_->BeginDrain();
}
void TailServer::Stop() {
  impl_->Stop();
}

}  // namespace tandem::cloud
