#include "tandem/wire/protocol.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace tandem::wire {
namespace {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");

// Appends fixed-size little-endian values (the host is little-endian, checked above).
class ByteWriter {
 public:
  template <typename T>
  ByteWriter& Put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t offset = bytes_.size();
    bytes_.resize(offset + sizeof(T));
    std::memcpy(bytes_.data() + offset, &value, sizeof(T));
    return *this;
  }
  ByteWriter& PutBytes(std::span<const std::byte> bytes) {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  std::vector<std::byte> Take() { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

// Reads what ByteWriter wrote; every read checks the remaining size first.
class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  template <typename T>
  Result<T> Get() {
    if (bytes_.size() - offset_ < sizeof(T)) return Truncated();
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }
  size_t remaining() const { return bytes_.size() - offset_; }
  std::span<const std::byte> Rest() {
    auto rest = bytes_.subspan(offset_);
    offset_ = bytes_.size();
    return rest;
  }
  Status ExpectEnd() const {
    if (remaining() == 0) return Status::Ok();
    return InvalidArgument(std::string(what_) + " payload has " + std::to_string(remaining()) +
                           " unexpected trailing bytes");
  }

 private:
  Status Truncated() const {
    return InvalidArgument(std::string(what_) + " payload is truncated (" + std::to_string(bytes_.size()) +
                           " bytes)");
  }

  std::span<const std::byte> bytes_;
  std::string_view what_;
  size_t offset_ = 0;
};

Message WithPayload(Header header, std::vector<std::byte> payload) {
  return {header, std::move(payload)};
}

Status ExpectType(const Message& message, MessageType type) {
  if (message.header.type == type) return Status::Ok();
  return InvalidArgument("expected a " + std::string(MessageTypeName(type)) + " message, got " +
                         std::string(MessageTypeName(message.header.type)));
}

Result<ActivationCodec> CodecFromWire(uint8_t precision, uint8_t compression) {
  ActivationCodec codec;
  TANDEM_ASSIGN_OR_RETURN(codec.precision, PrecisionFromWire(precision));
  TANDEM_ASSIGN_OR_RETURN(codec.compression, CompressionFromWire(compression));
  return codec;
}

}  // namespace

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "HELLO";
    case MessageType::kOpen:
      return "OPEN";
    case MessageType::kActivations:
      return "ACTIVATIONS";
    case MessageType::kToken:
      return "TOKEN";
    case MessageType::kError:
      return "ERROR";
    case MessageType::kClose:
      return "CLOSE";
    case MessageType::kPing:
      return "PING";
    case MessageType::kPong:
      return "PONG";
    case MessageType::kStats:
      return "STATS";
    case MessageType::kRows:
      return "ROWS";
    case MessageType::kVerify:
      return "VERIFY";
    case MessageType::kVerdict:
      return "VERDICT";
  }
  return "UNKNOWN";
}

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadFrame:
      return "bad_frame";
    case ErrorCode::kVersionMismatch:
      return "version_mismatch";
    case ErrorCode::kFingerprintMismatch:
      return "fingerprint_mismatch";
    case ErrorCode::kHandshakeRequired:
      return "handshake_required";
    case ErrorCode::kUnknownSession:
      return "unknown_session";
    case ErrorCode::kSessionExists:
      return "session_exists";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kBadArgument:
      return "bad_argument";
    case ErrorCode::kOutOfOrder:
      return "out_of_order";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kUnsupported:
      return "unsupported";
  }
  return "unknown";
}

HeaderBytes SerializeHeader(const Header& header) {
  ByteWriter writer;
  writer.Put(kMagic).Put(header.version).Put(static_cast<uint8_t>(header.type)).Put(header.flags);
  writer.Put(header.session).Put(header.sequence).Put(header.cut).Put(header.precision);
  writer.Put(header.compression).Put(header.rows).Put(header.cols).Put(header.position);
  const std::vector<std::byte> bytes = writer.Take();
  HeaderBytes out;
  std::memcpy(out.data(), bytes.data(), out.size());
  static_assert(kHeaderBytes == 40);
  return out;
}

Result<Header> ParseHeader(std::span<const std::byte> bytes) {
  if (bytes.size() != kHeaderBytes) {
    return InvalidArgument("header frame has " + std::to_string(bytes.size()) + " bytes, expected " +
                           std::to_string(kHeaderBytes));
  }
  ByteReader reader(bytes, "header");
  TANDEM_ASSIGN_OR_RETURN(const auto magic, reader.Get<uint32_t>());
  if (magic != kMagic) return InvalidArgument("header magic is not TNDM: not a Tandem message");
  Header header;
  TANDEM_ASSIGN_OR_RETURN(header.version, reader.Get<uint16_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto type, reader.Get<uint8_t>());
  if (type < static_cast<uint8_t>(MessageType::kHello) || type > static_cast<uint8_t>(kLastMessageType)) {
    return InvalidArgument("unknown message type " + std::to_string(type));
  }
  header.type = static_cast<MessageType>(type);
  TANDEM_ASSIGN_OR_RETURN(header.flags, reader.Get<uint8_t>());
  TANDEM_ASSIGN_OR_RETURN(header.session, reader.Get<uint64_t>());
  TANDEM_ASSIGN_OR_RETURN(header.sequence, reader.Get<uint64_t>());
  TANDEM_ASSIGN_OR_RETURN(header.cut, reader.Get<uint16_t>());
  TANDEM_ASSIGN_OR_RETURN(header.precision, reader.Get<uint8_t>());
  TANDEM_ASSIGN_OR_RETURN(header.compression, reader.Get<uint8_t>());
  TANDEM_ASSIGN_OR_RETURN(header.rows, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(header.cols, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(header.position, reader.Get<uint32_t>());
  return header;
}

Hello DescribeModel(const ModelConfig& config, uint64_t fingerprint,
                    std::vector<uint64_t> block_fingerprints) {
  return {.fingerprint = fingerprint,
          .n_layers = static_cast<uint32_t>(config.n_layers),
          .dim = static_cast<uint32_t>(config.dim),
          .vocab_size = static_cast<uint32_t>(config.vocab_size),
          .seq_len = static_cast<uint32_t>(config.seq_len),
          .codecs = AllActivationCodecs(),
          .block_fingerprints = std::move(block_fingerprints)};
}

Status CheckSameModel(const Hello& edge, const Hello& tail) {
  const auto describe = [](const Hello& hello) {
    return std::to_string(hello.n_layers) + " layers, dim " + std::to_string(hello.dim) + ", vocabulary " +
           std::to_string(hello.vocab_size);
  };
  if (edge.n_layers != tail.n_layers || edge.dim != tail.dim || edge.vocab_size != tail.vocab_size) {
    return InvalidArgument("the tail's model has " + describe(tail) + "; the edge's " + describe(edge));
  }
  if (tail.HoldsEveryBlock()) {
    if (edge.fingerprint == tail.fingerprint) return Status::Ok();
    return InvalidArgument("the tail serves model fingerprint " + std::to_string(tail.fingerprint) +
                           "; the edge has " + std::to_string(edge.fingerprint));
  }
  const std::string blocks = std::to_string(tail.held_first) + ":" + std::to_string(tail.held_last);
  const size_t entries = size_t{tail.n_layers} + 1;
  if (edge.block_fingerprints.size() != entries || tail.block_fingerprints.size() != entries) {
    return InvalidArgument("the tail holds blocks " + blocks +
                           " only, and the per-block fingerprints to compare them are missing");
  }
  const bool head = tail.held_last == tail.n_layers;
  for (uint32_t index = tail.held_first; index < entries; ++index) {
    if (index >= tail.held_last && !(head && index == tail.n_layers)) continue;
    if (edge.block_fingerprints[index] != tail.block_fingerprints[index]) {
      return InvalidArgument(
          "the tail holds blocks " + blocks + " of other weights: " +
          (index == tail.n_layers ? std::string("the head") : "block " + std::to_string(index)) + " differs");
    }
  }
  return Status::Ok();
}

Message MakeHello(const Hello& hello) {
  ByteWriter writer;
  writer.Put(hello.fingerprint).Put(hello.n_layers).Put(hello.dim).Put(hello.vocab_size).Put(hello.seq_len);
  writer.Put(hello.max_rows).Put(hello.max_sessions).Put(hello.max_payload_bytes);
  writer.Put(static_cast<uint8_t>(hello.codecs.size()));
  for (const ActivationCodec& codec : hello.codecs) {
    writer.Put(static_cast<uint8_t>(codec.precision)).Put(static_cast<uint8_t>(codec.compression));
  }
  writer.Put(hello.held_first).Put(hello.held_last);
  writer.Put(static_cast<uint16_t>(hello.block_fingerprints.size()));
  for (const uint64_t fingerprint : hello.block_fingerprints) writer.Put(fingerprint);
  return WithPayload({.type = MessageType::kHello}, writer.Take());
}

Result<Hello> ParseHello(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kHello));
  ByteReader reader(message.payload, "HELLO");
  Hello hello;
  TANDEM_ASSIGN_OR_RETURN(hello.fingerprint, reader.Get<uint64_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.n_layers, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.dim, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.vocab_size, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.seq_len, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.max_rows, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.max_sessions, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.max_payload_bytes, reader.Get<uint64_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto count, reader.Get<uint8_t>());
  constexpr size_t kHeldBytes = 2 * sizeof(uint32_t) + sizeof(uint16_t);
  if (reader.remaining() < 2u * count + kHeldBytes) {
    return InvalidArgument("HELLO codec list does not match its count");
  }
  for (int i = 0; i < count; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const auto precision, reader.Get<uint8_t>());
    TANDEM_ASSIGN_OR_RETURN(const auto compression, reader.Get<uint8_t>());
    TANDEM_ASSIGN_OR_RETURN(ActivationCodec codec, CodecFromWire(precision, compression));
    hello.codecs.push_back(codec);
  }
  TANDEM_ASSIGN_OR_RETURN(hello.held_first, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(hello.held_last, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto fingerprints, reader.Get<uint16_t>());
  if (fingerprints > kMaxHelloBlocks + 1 || reader.remaining() != fingerprints * sizeof(uint64_t)) {
    return InvalidArgument("HELLO block fingerprint list does not match its count");
  }
  for (int i = 0; i < fingerprints; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const auto fingerprint, reader.Get<uint64_t>());
    hello.block_fingerprints.push_back(fingerprint);
  }
  if (hello.held_last != 0 && (hello.held_first >= hello.held_last || hello.held_last > hello.n_layers)) {
    return InvalidArgument("HELLO held blocks [" + std::to_string(hello.held_first) + ", " +
                           std::to_string(hello.held_last) + ") are not within the model's " +
                           std::to_string(hello.n_layers));
  }
  return hello;
}

Message MakeOpen(const OpenRequest& open) {
  ByteWriter writer;
  writer.Put(open.sampling.temperature).Put(open.sampling.top_p).Put(open.sampling.seed);
  writer.Put(static_cast<uint8_t>(open.top_logprobs)).Put(open.max_positions);
  writer.Put(static_cast<uint16_t>(open.end_block));
  return WithPayload({.type = MessageType::kOpen,
                      .session = open.session,
                      .cut = static_cast<uint16_t>(open.cut),
                      .precision = static_cast<uint8_t>(open.codec.precision),
                      .compression = static_cast<uint8_t>(open.codec.compression)},
                     writer.Take());
}

Result<OpenRequest> ParseOpen(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kOpen));
  OpenRequest open;
  open.session = message.header.session;
  open.cut = message.header.cut;
  TANDEM_ASSIGN_OR_RETURN(open.codec, CodecFromWire(message.header.precision, message.header.compression));
  ByteReader reader(message.payload, "OPEN");
  TANDEM_ASSIGN_OR_RETURN(open.sampling.temperature, reader.Get<float>());
  TANDEM_ASSIGN_OR_RETURN(open.sampling.top_p, reader.Get<float>());
  TANDEM_ASSIGN_OR_RETURN(open.sampling.seed, reader.Get<uint64_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto top_logprobs, reader.Get<uint8_t>());
  TANDEM_ASSIGN_OR_RETURN(open.max_positions, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto end_block, reader.Get<uint16_t>());
  open.end_block = end_block;
  TANDEM_RETURN_IF_ERROR(reader.ExpectEnd());
  TANDEM_RETURN_IF_ERROR(open.sampling.Validate());
  if (top_logprobs > kMaxTopLogprobs) {
    return InvalidArgument("top_logprobs must be at most " + std::to_string(kMaxTopLogprobs));
  }
  open.top_logprobs = top_logprobs;
  return open;
}

Message MakeActivations(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows, uint32_t cols,
                        ActivationCodec codec, Compression applied, std::vector<std::byte> payload) {
  return WithPayload({.type = MessageType::kActivations,
                      .session = session,
                      .sequence = sequence,
                      .precision = static_cast<uint8_t>(codec.precision),
                      .compression = static_cast<uint8_t>(applied),
                      .rows = rows,
                      .cols = cols,
                      .position = position},
                     std::move(payload));
}

Message MakeVerify(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows, uint32_t cols,
                   ActivationCodec codec, Compression applied, std::span<const int> draft,
                   std::vector<std::byte> payload) {
  ByteWriter writer;
  writer.Put(static_cast<uint16_t>(draft.size()));
  for (const int token : draft) writer.Put(static_cast<int32_t>(token));
  writer.PutBytes(payload);
  Message message = MakeActivations(session, sequence, position, rows, cols, codec, applied, writer.Take());
  message.header.type = MessageType::kVerify;
  return message;
}

Result<VerifyRequest> ParseVerify(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kVerify));
  ByteReader reader(message.payload, "VERIFY");
  TANDEM_ASSIGN_OR_RETURN(const auto count, reader.Get<uint16_t>());
  if (count == 0 || count > kMaxDraftTokens) {
    return InvalidArgument("VERIFY drafts " + std::to_string(count) + " tokens; it takes 1 to " +
                           std::to_string(kMaxDraftTokens));
  }
  if (count >= message.header.rows) {
    return InvalidArgument("VERIFY drafts " + std::to_string(count) + " tokens in " +
                           std::to_string(message.header.rows) +
                           " rows: a row of the session's own must come first");
  }
  if (reader.remaining() < count * sizeof(int32_t)) return InvalidArgument("VERIFY draft list is truncated");
  VerifyRequest verify;
  verify.draft.reserve(count);
  for (int i = 0; i < count; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const auto token, reader.Get<int32_t>());
    verify.draft.push_back(token);
  }
  verify.activations = reader.Rest();
  return verify;
}

Message MakeVerdict(const VerdictReply& verdict) {
  ByteWriter writer;
  writer.Put(static_cast<uint16_t>(verdict.kept)).Put(verdict.compute_us);
  for (const int token : verdict.tokens) writer.Put(static_cast<int32_t>(token));
  return WithPayload(
      {.type = MessageType::kVerdict, .session = verdict.session, .sequence = verdict.sequence},
      writer.Take());
}

Result<VerdictReply> ParseVerdict(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kVerdict));
  VerdictReply verdict{.session = message.header.session, .sequence = message.header.sequence};
  ByteReader reader(message.payload, "VERDICT");
  TANDEM_ASSIGN_OR_RETURN(const auto kept, reader.Get<uint16_t>());
  TANDEM_ASSIGN_OR_RETURN(verdict.compute_us, reader.Get<uint32_t>());
  if (kept > kMaxDraftTokens) {
    return InvalidArgument("VERDICT keeps " + std::to_string(kept) + " drafts; a VERIFY has at most " +
                           std::to_string(kMaxDraftTokens));
  }
  const size_t tokens = size_t{kept} + 1;
  if (reader.remaining() < tokens * sizeof(int32_t)) {
    return InvalidArgument("VERDICT carries fewer than kept + 1 = " + std::to_string(tokens) + " tokens");
  }
  verdict.kept = kept;
  verdict.tokens.reserve(tokens);
  for (size_t i = 0; i < tokens; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const auto token, reader.Get<int32_t>());
    verdict.tokens.push_back(token);
  }
  TANDEM_RETURN_IF_ERROR(reader.ExpectEnd());
  return verdict;
}

Message MakeToken(const TokenReply& token) {
  ByteWriter writer;
  writer.Put(static_cast<int32_t>(token.token)).Put(token.compute_us);
  writer.Put(static_cast<uint8_t>(token.top_logprobs.size()));
  for (const auto& [id, logprob] : token.top_logprobs) writer.Put(static_cast<int32_t>(id)).Put(logprob);
  return WithPayload({.type = MessageType::kToken, .session = token.session, .sequence = token.sequence},
                     writer.Take());
}

Result<TokenReply> ParseToken(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kToken));
  TokenReply token{.session = message.header.session, .sequence = message.header.sequence};
  ByteReader reader(message.payload, "TOKEN");
  TANDEM_ASSIGN_OR_RETURN(token.token, reader.Get<int32_t>());
  TANDEM_ASSIGN_OR_RETURN(token.compute_us, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto count, reader.Get<uint8_t>());
  if (count > kMaxTopLogprobs || reader.remaining() != count * 8u) {
    return InvalidArgument("TOKEN top_logprobs list does not match its count");
  }
  for (int i = 0; i < count; ++i) {
    TANDEM_ASSIGN_OR_RETURN(const auto id, reader.Get<int32_t>());
    TANDEM_ASSIGN_OR_RETURN(const auto logprob, reader.Get<float>());
    token.top_logprobs.emplace_back(id, logprob);
  }
  return token;
}

Message MakeRows(const RowsReply& rows) {
  ByteWriter writer;
  writer.Put(rows.compute_us).PutBytes(rows.payload);
  return WithPayload({.type = MessageType::kRows,
                      .session = rows.session,
                      .sequence = rows.sequence,
                      .precision = static_cast<uint8_t>(rows.codec.precision),
                      .compression = static_cast<uint8_t>(rows.codec.compression),
                      .rows = rows.rows,
                      .cols = rows.cols,
                      .position = rows.position},
                     writer.Take());
}

Result<RowsReply> ParseRows(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kRows));
  const Header& header = message.header;
  RowsReply rows{.session = header.session,
                 .sequence = header.sequence,
                 .position = header.position,
                 .rows = header.rows,
                 .cols = header.cols};
  TANDEM_ASSIGN_OR_RETURN(rows.codec, CodecFromWire(header.precision, header.compression));
  if (rows.rows == 0 || rows.cols == 0) return InvalidArgument("ROWS holds no rows");
  ByteReader reader(message.payload, "ROWS");
  TANDEM_ASSIGN_OR_RETURN(rows.compute_us, reader.Get<uint32_t>());
  const auto rest = reader.Rest();
  rows.payload.assign(rest.begin(), rest.end());
  return rows;
}

Message MakeError(const ErrorReply& error) {
  ByteWriter writer;
  writer.Put(static_cast<uint16_t>(error.code));
  const std::string_view text = std::string_view(error.message).substr(0, kMaxErrorMessageBytes);
  writer.PutBytes(std::as_bytes(std::span(text.data(), text.size())));
  return WithPayload({.type = MessageType::kError,
                      .flags = static_cast<uint8_t>(error.retryable ? kFlagRetryable : 0),
                      .session = error.session,
                      .sequence = error.sequence},
                     writer.Take());
}

Result<ErrorReply> ParseError(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kError));
  ErrorReply error{.session = message.header.session,
                   .sequence = message.header.sequence,
                   .retryable = (message.header.flags & kFlagRetryable) != 0};
  ByteReader reader(message.payload, "ERROR");
  TANDEM_ASSIGN_OR_RETURN(const auto code, reader.Get<uint16_t>());
  if (code < static_cast<uint16_t>(ErrorCode::kBadFrame) ||
      code > static_cast<uint16_t>(ErrorCode::kUnsupported)) {
    error.code = ErrorCode::kInternal;  // a newer peer's code: keep the message, treat as internal
  } else {
    error.code = static_cast<ErrorCode>(code);
  }
  const auto text = reader.Rest();
  if (text.size() > kMaxErrorMessageBytes) return InvalidArgument("ERROR message text is too long");
  error.message.assign(reinterpret_cast<const char*>(text.data()), text.size());
  return error;
}

Status ErrorToStatus(const ErrorReply& error) {
  const std::string message =
      "cloud tail refused (" + std::string(ErrorCodeName(error.code)) + "): " + error.message;
  switch (error.code) {
    case ErrorCode::kOverloaded:
      return ResourceExhausted(message);
    case ErrorCode::kInternal:
      return Internal(message);
    case ErrorCode::kUnknownSession:
    case ErrorCode::kHandshakeRequired:
      return Unavailable(message);
    default:
      return InvalidArgument(message);
  }
}

Message MakeClose(uint64_t session) {
  return {{.type = MessageType::kClose, .session = session}, {}};
}

Message MakePing(std::span<const std::byte> payload) {
  return {{.type = MessageType::kPing},
          std::vector<std::byte>(payload.begin(), payload.begin() + std::min(payload.size(), kMaxPingBytes))};
}

Message MakeStatsRequest(uint64_t sequence) {
  return {{.type = MessageType::kStats, .sequence = sequence}, {}};
}

Message MakeStats(const TailStats& stats, uint64_t sequence) {
  const ComputeProfile& profile = stats.profile;
  ByteWriter writer;
  writer.Put(stats.workers).Put(stats.sessions).Put(stats.queue_depth).Put(stats.utilization);
  writer.Put(stats.free_kv_bytes).Put(static_cast<float>(profile.head_ms));
  writer.Put(static_cast<uint16_t>(profile.decode_block_ms.size()))
      .Put(static_cast<uint8_t>(profile.prefill.size()));
  for (double ms : profile.decode_block_ms) writer.Put(static_cast<float>(ms));
  for (const auto& bucket : profile.prefill) {
    writer.Put(static_cast<uint32_t>(bucket.tokens));
    for (double ms : bucket.block_ms) writer.Put(static_cast<float>(ms));
  }
  return WithPayload({.type = MessageType::kStats, .sequence = sequence}, writer.Take());
}

Result<TailStats> ParseStats(const Message& message) {
  TANDEM_RETURN_IF_ERROR(ExpectType(message, MessageType::kStats));
  ByteReader reader(message.payload, "STATS");
  TailStats stats;
  TANDEM_ASSIGN_OR_RETURN(stats.workers, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(stats.sessions, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(stats.queue_depth, reader.Get<uint32_t>());
  TANDEM_ASSIGN_OR_RETURN(stats.utilization, reader.Get<float>());
  TANDEM_ASSIGN_OR_RETURN(stats.free_kv_bytes, reader.Get<int64_t>());
  if (!(stats.utilization >= 0 && stats.utilization <= 1)) {
    return InvalidArgument("STATS utilization must be in [0, 1]");
  }
  const auto get_ms = [&]() -> Result<double> {
    TANDEM_ASSIGN_OR_RETURN(const float ms, reader.Get<float>());
    if (!std::isfinite(ms) || ms < 0) return InvalidArgument("STATS holds a negative or non-finite time");
    return static_cast<double>(ms);
  };
  ComputeProfile& profile = stats.profile;
  TANDEM_ASSIGN_OR_RETURN(profile.head_ms, get_ms());
  TANDEM_ASSIGN_OR_RETURN(const auto blocks, reader.Get<uint16_t>());
  TANDEM_ASSIGN_OR_RETURN(const auto buckets, reader.Get<uint8_t>());
  if (blocks > kMaxProfileBlocks || buckets > kMaxProfileBuckets ||
      reader.remaining() != (blocks + buckets * (1u + blocks)) * 4u) {
    return InvalidArgument("STATS profile does not match its block and bucket counts");
  }
  for (int b = 0; b < blocks; ++b) {
    TANDEM_ASSIGN_OR_RETURN(const double ms, get_ms());
    profile.decode_block_ms.push_back(ms);
  }
  for (int i = 0; i < buckets; ++i) {
    ComputeProfile::PrefillBucket bucket;
    TANDEM_ASSIGN_OR_RETURN(const auto tokens, reader.Get<uint32_t>());
    bucket.tokens = static_cast<int>(std::min<uint32_t>(tokens, 1u << 30));
    for (int b = 0; b < blocks; ++b) {
      TANDEM_ASSIGN_OR_RETURN(const double ms, get_ms());
      bucket.block_ms.push_back(ms);
    }
    profile.prefill.push_back(std::move(bucket));
  }
  return stats;
}

}  // namespace tandem::wire
