// The edge <-> cloud wire protocol: one message = a fixed 40-byte little-endian header frame and a payload
// frame (possibly empty), sent as a ZeroMQ multipart message from a DEALER (edge) to a ROUTER (cloud).
//
// Header layout (offsets in bytes):
//    0 magic u32 "TNDM"   4 version u16   6 type u8   7 flags u8   8 session u64   16 sequence u64
//   24 cut u16   26 precision u8   27 compression u8   28 rows u32   32 cols u32   36 position u32
//
// Every parser here checks sizes before it reads or allocates; a bad message becomes a Status naming the
// problem, which the cloud answers with an ERROR message. docs/api.md documents every message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/model/model_config.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/compute_profile.hpp"
#include "tandem/wire/sampling_params.hpp"

namespace tandem::wire {

inline constexpr uint32_t kMagic = 0x4D444E54;  // the bytes "TNDM"
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHeaderBytes = 40;

enum class MessageType : uint8_t {
  kHello = 1,        // edge -> cloud: model identity and codecs; cloud -> edge: its identity and limits
  kOpen = 2,         // edge -> cloud: a session (cut, codec, sampling); no reply unless it fails
  kActivations = 3,  // edge -> cloud: boundary rows for the session's next positions
  kToken = 4,        // cloud -> edge: the token sampled from the last row of an ACTIVATIONS
  kError = 5,        // cloud -> edge: code + message, for a session (or 0) and a sequence number
  kClose = 6,        // edge -> cloud: the session is over; no reply
  kPing = 7,         // edge -> cloud: opaque payload, echoed by PONG
  kPong = 8,
  kStats = 9,     // edge -> cloud: empty, a request; cloud -> edge: its load and per-block compute times
  kRows = 10,     // cloud -> edge: a private-output session's rows after its last block, for an ACTIVATIONS
  kVerify = 11,   // edge -> cloud: ACTIVATIONS whose last rows are drafted tokens, named in the payload
  kVerdict = 12,  // cloud -> edge: the drafts a VERIFY kept and the tokens its step yields
};
inline constexpr MessageType kLastMessageType = MessageType::kVerdict;
std::string_view MessageTypeName(MessageType type);

// ERROR codes. Retryable ones carry kFlagRetryable: the same request may succeed later or elsewhere.
enum class ErrorCode : uint16_t {
  kBadFrame = 1,             // unparsable header or payload
  kVersionMismatch = 2,      // header version is not kProtocolVersion
  kFingerprintMismatch = 3,  // HELLO names other weights or another shape
  kHandshakeRequired = 4,    // a message before a successful HELLO on this connection
  kUnknownSession = 5,
  kSessionExists = 6,
  kOverloaded = 7,   // session or KV-memory limit reached (retryable)
  kBadArgument = 8,  // well-formed but invalid: cut, codec, sampling, shape
  kOutOfOrder = 9,   // sequence number or position is not the next one
  kTooLarge = 10,    // over a configured limit (rows, payload)
  kInternal = 11,
  kUnsupported = 12,
};
std::string_view ErrorCodeName(ErrorCode code);

inline constexpr uint8_t kFlagRetryable = 1;  // on ERROR

struct Header {
  uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kPing;
  uint8_t flags = 0;
  uint64_t session = 0;
  uint64_t sequence = 0;
  uint16_t cut = 0;
  uint8_t precision = 0;    // ActivationCodec precision, raw (validated where used)
  uint8_t compression = 0;  // compression applied to this payload, raw
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t position = 0;  // ACTIVATIONS: position of the first row in the session
};

using HeaderBytes = std::array<std::byte, kHeaderBytes>;
HeaderBytes SerializeHeader(const Header& header);
// Refuses a wrong size, a wrong magic, an unknown type; a wrong version parses (so that the cloud can
// answer kVersionMismatch) and is checked by the receiver.
Result<Header> ParseHeader(std::span<const std::byte> bytes);

struct Message {
  Header header;
  std::vector<std::byte> payload;
};

// HELLO, both ways. The edge sends its model identity and codecs; the cloud answers with its own identity
// and the limits it enforces.
struct Hello {
  uint64_t fingerprint = 0;  // Checkpoint::Fingerprint: every weight and the config
  uint32_t n_layers = 0;
  uint32_t dim = 0;
  uint32_t vocab_size = 0;
  uint32_t seq_len = 0;
  std::vector<ActivationCodec> codecs;
  uint32_t max_rows = 0;           // cloud only: rows per ACTIVATIONS
  uint32_t max_sessions = 0;       // cloud only: open sessions, all connections together
  uint64_t max_payload_bytes = 0;  // cloud only
  // Cloud only: the blocks whose weights the tail holds, [held_first, held_last); held_last == n_layers
  // means it holds the final norm and head too. 0, 0: every block.
  uint32_t held_first = 0;
  uint32_t held_last = 0;
  // Each block's weight hash, then the head's (WeightFingerprints::List; 0 where not held), or empty. With
  // them a tail holding only some blocks (a block-range checkpoint, whose whole-file fingerprint differs)
  // and an edge check that the blocks they share are the same weights.
  std::vector<uint64_t> block_fingerprints;
  bool HoldsEveryBlock() const { return held_last == 0 || (held_first == 0 && held_last == n_layers); }
};
inline constexpr size_t kMaxHelloBlocks = 4096;
// A model's identity for HELLO: its fingerprint, shape and per-block hashes, and every codec this build
// speaks.
Hello DescribeModel(const ModelConfig& config, uint64_t fingerprint,
                    std::vector<uint64_t> block_fingerprints = {});
// Whether `tail` (a tail's HELLO) serves the model `edge` describes: the same shape and, when it holds
// every block, the same fingerprint, else the same hashes for the blocks (and head) it holds. The error
// says what differs.
Status CheckSameModel(const Hello& edge, const Hello& tail);
Message MakeHello(const Hello& hello);
Result<Hello> ParseHello(const Message& message);

struct OpenRequest {
  uint64_t session = 0;
  int cut = 0;
  ActivationCodec codec;
  SamplingParams sampling;
  int top_logprobs = 0;        // 0..kMaxTopLogprobs alternatives returned with each TOKEN
  uint32_t max_positions = 0;  // positions the session will use (KV cache size); <= seq_len
  // Private output: the tail runs only blocks [cut, end_block) and answers each ACTIVATIONS with ROWS (the
  // rows after block end_block - 1); the edge runs the rest, the head and sampling. 0: the tail runs every
  // block from the cut, the head and sampling, and answers with TOKEN.
  int end_block = 0;
  bool private_output() const { return end_block > 0; }
};
inline constexpr int kMaxTopLogprobs = 20;
Message MakeOpen(const OpenRequest& open);
Result<OpenRequest> ParseOpen(const Message& message);

// ACTIVATIONS: the header carries shape, codec and position; the payload is the codec's bytes.
Message MakeActivations(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows, uint32_t cols,
                        ActivationCodec codec, Compression applied, std::vector<std::byte> payload);

// VERIFY (speculative decoding): the header as ACTIVATIONS'; the payload is the draft count n (u16), the n
// drafted token ids (i32), then the codec's bytes for all the rows. The last n rows are the drafts' (the
// tail checks them against the tokens it samples); at least one row of the session's own comes first.
// Only sessions that answer TOKEN take VERIFY: a private-output session gets ACTIVATIONS with its drafts'
// rows and verifies them on the edge, which then sends its next step from the first position it keeps.
inline constexpr int kMaxDraftTokens = 64;
Message MakeVerify(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows, uint32_t cols,
                   ActivationCodec codec, Compression applied, std::span<const int> draft,
                   std::vector<std::byte> payload);
struct VerifyRequest {
  std::vector<int> draft;
  std::span<const std::byte> activations;  // the codec's bytes: a view into the message's payload
};
// Refuses a draft count of 0, over kMaxDraftTokens or not below the header's rows, and a truncated list.
// Token ids are not checked against a vocabulary here.
Result<VerifyRequest> ParseVerify(const Message& message);

// VERDICT: the answer to a VERIFY: the drafts kept (u16), compute_us (u32), then kept + 1 token ids (i32):
// the kept drafts and the token sampled after them.
struct VerdictReply {
  uint64_t session = 0;
  uint64_t sequence = 0;  // of the VERIFY it answers
  int kept = 0;
  std::vector<int> tokens;  // kept + 1
  uint32_t compute_us = 0;
};
Message MakeVerdict(const VerdictReply& verdict);
Result<VerdictReply> ParseVerdict(const Message& message);

struct TokenReply {
  uint64_t session = 0;
  uint64_t sequence = 0;  // of the ACTIVATIONS it answers
  int token = 0;
  uint32_t compute_us = 0;  // cloud compute of the step: decode, blocks, head, sampling (not queueing)
  std::vector<std::pair<int, float>> top_logprobs;
};
Message MakeToken(const TokenReply& token);
Result<TokenReply> ParseToken(const Message& message);

// ROWS: the header carries the session, the sequence of the ACTIVATIONS answered, its position and shape,
// and the codec applied (the session's); the payload is the tail's compute time (u32 microseconds) and
// then the codec's bytes.
struct RowsReply {
  uint64_t session = 0;
  uint64_t sequence = 0;
  uint32_t position = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  ActivationCodec codec;  // as applied to this payload
  uint32_t compute_us = 0;
  std::vector<std::byte> payload;
};
Message MakeRows(const RowsReply& rows);
Result<RowsReply> ParseRows(const Message& message);

struct ErrorReply {
  uint64_t session = 0;
  uint64_t sequence = 0;
  ErrorCode code = ErrorCode::kInternal;
  bool retryable = false;
  std::string message;
};
inline constexpr size_t kMaxErrorMessageBytes = 1024;
Message MakeError(const ErrorReply& error);
Result<ErrorReply> ParseError(const Message& message);
// The Status an edge reports for an ERROR it received.
Status ErrorToStatus(const ErrorReply& error);

Message MakeClose(uint64_t session);
inline constexpr size_t kMaxPingBytes = 64;
Message MakePing(std::span<const std::byte> payload);

// STATS reply: what a planner needs to know of the tail now. Requests are STATS with an empty payload,
// answered with the same sequence number.
struct TailStats {
  uint32_t workers = 0;
  uint32_t sessions = 0;     // open sessions
  uint32_t queue_depth = 0;  // ACTIVATIONS waiting for a worker
  float utilization = 0;     // busy fraction of the workers over the last second, 0..1
  int64_t free_kv_bytes = 0;
  ComputeProfile profile;  // measured at start-up with its weights and threads
};
inline constexpr size_t kMaxProfileBlocks = 4096;
inline constexpr size_t kMaxProfileBuckets = 16;
Message MakeStatsRequest(uint64_t sequence);
Message MakeStats(const TailStats& stats, uint64_t sequence);
// Refuses truncated or oversized lists and non-finite or negative times.
Result<TailStats> ParseStats(const Message& message);

}  // namespace tandem::wire
