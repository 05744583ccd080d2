// tokenizer.json "decoder": ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and
// Sequence. A decoder turns the token strings of an id sequence into text pieces that are then
// concatenated. Pieces are raw bytes here (ByteLevel may produce incomplete UTF-8 at the end of
// a stream); the caller repairs them to valid UTF-8 at the very end.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qlora::tokenizer {

class Decoder {
  public:
    virtual ~Decoder() = default;
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null (tokens are then joined with spaces, as HF does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, const std::string& where);

}  // namespace qlora::tokenizer
