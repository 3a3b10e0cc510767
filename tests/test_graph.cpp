#include <cozy/host/graph.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace cozy::host {
namespace {

TEST(ParseGraph, ReadsComfyUIsApiFormat) {
  ParseResult r = parse_graph(R"({
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "cfg": 7.5, "name": "x", "on": true,
          "model": ["4", 0], "list": {"__value__": [1, 2]}}, "_meta": {"title": "Sample"}},
    "4": {"class_type": "Loader", "inputs": {}}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].to_string();
  ASSERT_EQ(r.graph->nodes.size(), 2u);
  const GraphNode* n = r.graph->find("3");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->class_type, "KSampler");
  EXPECT_EQ(n->title, "Sample");
  EXPECT_EQ(n->input("seed")->literal, 42);
  EXPECT_EQ(n->input("cfg")->literal, 7.5);
  EXPECT_TRUE(n->input("model")->is_link);
  EXPECT_EQ(n->input("model")->link.node, "4");
  EXPECT_EQ(n->input("model")->link.output, 0);
  EXPECT_TRUE(n->input("list")->is_list);
  EXPECT_EQ(n->input("list")->literal, nlohmann::json::array({1, 2}));
  EXPECT_EQ(r.graph->find("5"), nullptr);
}

TEST(ParseGraph, AcceptsThePromptBodyOfComfyUIsPostPrompt) {
  ParseResult r = parse_graph(R"({"prompt": {"1": {"class_type": "A", "inputs": {"x": 1}}}, "client_id": "abc"})");
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.graph->nodes.size(), 1u);
  EXPECT_EQ(r.graph->nodes[0].class_type, "A");
}

TEST(ParseGraph, AcceptsANumericNodeIdInALink) {
  ParseResult r = parse_graph(R"({"1": {"class_type": "A"}, "2": {"class_type": "B", "inputs": {"x": [1, 0]}}})");
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.graph->find("2")->input("x")->link.node, "1");
}

TEST(ParseGraph, ReportsMalformedJsonWithLineAndColumn) {
  ParseResult r = parse_graph("{\"1\": {\"class_type\": \"A\",\n  \"inputs\": {\"x\": 1,}}}");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.graph);
  EXPECT_EQ(r.errors[0].message.rfind("malformed JSON at line 2, column 21: ", 0), 0u) << r.errors[0].message;
  ParseResult truncated = parse_graph("{\"1\": ");
  ASSERT_EQ(truncated.errors.size(), 1u);
  EXPECT_EQ(truncated.errors[0].message.rfind("malformed JSON at line 1, column 7", 0), 0u)
      << truncated.errors[0].message;
}

TEST(ParseGraph, ReportsANumberTooLargeForADouble) {
  ParseResult r = parse_graph(R"({"1": {"class_type": "A", "inputs": {"x": -2e308}}})");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "malformed JSON: number overflow parsing '-2e308'");
}

TEST(ParseGraph, RefusesListLiteralsNestedTooDeeply) {
  std::string deep = std::string(40, '[') + "1" + std::string(40, ']');
  ParseResult r = parse_graph(R"({"1": {"class_type": "A", "inputs": {"x": {"__value__": )" + deep + "}}}}");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "node 1 (A), input 'x': list literal nested more than 32 deep");
}

// Every input the fuzzer found a problem with is replayed here.
TEST(ParseGraph, FuzzerFindingsStayFixed) {
  std::size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(COZY_FUZZ_REGRESSIONS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ParseResult r = parse_graph(text);
    EXPECT_NE(r.graph.has_value(), !r.errors.empty()) << entry.path();
    ++replayed;
  }
  EXPECT_GE(replayed, 3u);
}

TEST(ParseGraph, ReportsEveryShapeErrorAtOnce) {
  ParseResult r = parse_graph(R"({
    "1": 5,
    "2": {"inputs": {}},
    "3": {"class_type": 7},
    "4": {"class_type": "A", "inputs": []},
    "5": {"class_type": "A", "inputs": {"x": [1, 2, 3], "y": {"a": {"b": 1}}, "z": null, "w": ["1", -1],
                                        "v": {"__value__": [1], "more": 2}}}})");
  EXPECT_FALSE(r.graph);
  std::vector<std::string> messages;
  for (const auto& e : r.errors) messages.push_back(e.to_string());
  EXPECT_EQ(messages, (std::vector<std::string>{
                          "node 1: a node is a JSON object with class_type and inputs, got number",
                          "node 2: missing class_type",
                          "node 3: class_type must be a string",
                          "node 4 (A): inputs must be a JSON object, got array",
                          "node 5 (A), input 'v': a list literal is written {\"__value__\": [...]}",
                          "node 5 (A), input 'w': a link is [node_id, output_index]; a list literal is written "
                          "{\"__value__\": [...]}",
                          "node 5 (A), input 'x': a link is [node_id, output_index]; a list literal is written "
                          "{\"__value__\": [...]}",
                          "node 5 (A), input 'y': an object literal holds at most 16 keys with scalar values (a list "
                          "literal is written {\"__value__\": [...]})",
                          "node 5 (A), input 'z': null is not a value",
                      }));
}

TEST(ParseGraph, RefusesADocumentThatIsNotAnObject) {
  ParseResult r = parse_graph("[1, 2]");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "a graph is a JSON object of node id -> node, got array");
}

TEST(ApplyOverride, SetsScalarsAsJsonAndEverythingElseAsText) {
  ParseResult r = parse_graph(R"({"1": {"class_type": "A", "inputs": {"seed": 1, "l": ["2", 0]}}, "2": {"class_type": "B"}})");
  Graph& g = *r.graph;
  EXPECT_EQ(apply_override(g, "1.seed=99"), "");
  EXPECT_EQ(g.find("1")->input("seed")->literal, 99);
  EXPECT_EQ(apply_override(g, "1.cfg=2.5"), "");
  EXPECT_EQ(g.find("1")->input("cfg")->literal, 2.5);
  EXPECT_EQ(apply_override(g, "1.name=hello world"), "");
  EXPECT_EQ(g.find("1")->input("name")->literal, "hello world");
  EXPECT_EQ(apply_override(g, "1.flag=true"), "");
  EXPECT_EQ(g.find("1")->input("flag")->literal, true);
  EXPECT_EQ(apply_override(g, "1.l=text"), "");
  EXPECT_FALSE(g.find("1")->input("l")->is_link) << "a literal replaces a link";
  EXPECT_EQ(apply_override(g, "1.path=a=b"), "");
  EXPECT_EQ(g.find("1")->input("path")->literal, "a=b");
}

TEST(ApplyOverride, NamesWhatIsWrong) {
  ParseResult r = parse_graph(R"({"1": {"class_type": "A"}})");
  EXPECT_EQ(apply_override(*r.graph, "seed=1"), "--set expects ID.INPUT=VALUE, got 'seed=1'");
  EXPECT_EQ(apply_override(*r.graph, "1.seed"), "--set expects ID.INPUT=VALUE, got '1.seed'");
  EXPECT_EQ(apply_override(*r.graph, "9.seed=1"), "--set 9.seed=1: there is no node 9");
}

TEST(Issue, FormatsWhereAndWhat) {
  EXPECT_EQ((Issue{"3", "SaveImage", "images", "bad"}.to_string()), "node 3 (SaveImage), input 'images': bad");
  EXPECT_EQ((Issue{"3", "", "", "bad"}.to_string()), "node 3: bad");
  EXPECT_EQ((Issue{"", "", "", "bad"}.to_string()), "bad");
  EXPECT_EQ((Issue{"3", "A", "x", "bad"}.to_json()["input"]), "x");
}

}  // namespace
}  // namespace cozy::host
