// SPDX-License-Identifier: MIT
//
// verifier and signer: the certificate cache, trust reloads, and the instances of one
// factory on several threads (filter workers).
#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "crypto_fixture.hpp"

namespace {

/// Signs @p count envelopes that differ in `i` (each one a distinct signed message).
std::vector<std::string> pySignMany(const std::string &who, int count) {
  std::vector<std::string> out;
  for (int k = 0; k < count; ++k) {
    auto v = json::parse(unsignedEnvelope());
    REQUIRE(v);
    v->set("i", json::Value::fromInt(100 + k));
    out.push_back(pySign(who, json::canonical(*v)));
  }
  return out;
}

}  // namespace

TEST_CASE("verifier: one certificate, many messages: parsed and chain-checked once, then cached") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const auto signed_msgs = pySignMany("good", 3);
  const int rounds = 20;
  auto start = std::chrono::steady_clock::now();
  int passed = 0;
  for (int r = 0; r < rounds; ++r) {
    for (const auto &s : signed_msgs) {
      passed += passes(verify(*verifier, fromWire(s), ctx)) ? 1 : 0;
    }
  }
  auto seconds = [](std::chrono::steady_clock::time_point since) {
    return static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - since).count());
  };
  auto hits = [&] { return static_cast<std::int64_t>(ctx.value("cert_cache_hits")); };
  const std::int64_t elapsed_s = seconds(start);
  const auto total = static_cast<std::uint64_t>(rounds * static_cast<int>(signed_msgs.size()));
  CHECK(passed == static_cast<int>(total));
  CHECK(ctx.value("verified") == total);
  // One miss for the first message, and at most one more per second of test time (an
  // entry is re-checked once it is a second old).
  CHECK(hits() >= static_cast<std::int64_t>(total) - 1 - elapsed_s);
  CHECK(hits() < static_cast<std::int64_t>(total));

  // The cache holds the chain check only: each message's own signature is still checked.
  auto tampered = json::parse(signed_msgs[0]);
  tampered->set("i", json::Value::fromInt(99999));
  std::int64_t hits_before = hits();
  auto refusals_start = std::chrono::steady_clock::now();
  CHECK(verify(*verifier, fromWire(json::canonical(*tampered)), ctx).reason == "bad_signature");

  // Refusals are cached too, and keep their reason every time.
  const std::string revoked = pySign("revoked", unsignedEnvelope());
  const std::string foreign = pySign("foreign", unsignedEnvelope());
  for (int k = 0; k < 5; ++k) {
    CHECK(verify(*verifier, fromWire(revoked), ctx).reason == "revoked");
    CHECK(verify(*verifier, fromWire(foreign), ctx).reason == "untrusted_certificate");
  }
  // 11 look-ups: two first misses, and at most one miss per certificate per second.
  CHECK(hits() >= hits_before + 11 - 2 - 3 * seconds(refusals_start));
  CHECK(ctx.value("verified") == total);
}

TEST_CASE("verifier: certificate cache unit rules") {
  using Clock = std::chrono::steady_clock;
  plugins::CertCache cache(2, std::chrono::seconds(1));
  auto info = std::make_shared<plugins::CertInfo>();
  info->not_before = 1000;
  info->not_after = 2000;
  auto entry = [&](plugins::TrustStore::Check result, std::uint64_t generation, Clock::time_point at) {
    auto c = std::make_shared<plugins::CertCheck>();
    c->info = info;
    c->result = result;
    c->generation = generation;
    c->checked_at = at;
    return c;
  };
  const auto t0 = Clock::now();
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  // older than a second: re-check, reusing the parsed certificate
  auto stale = cache.find("A", 1, t0 + std::chrono::milliseconds(1000), 1500);
  CHECK(!stale.fresh);
  CHECK(stale.reparsed == info);
  // outside the validity window an Ok result is not reused, however young
  CHECK(!cache.find("A", 1, t0, 2000).fresh);
  CHECK(!cache.find("A", 1, t0, 999).fresh);
  // a refusal is kept for its second even outside the window (an expired certificate)
  cache.put("E", entry(plugins::TrustStore::Check::Expired, 1, t0));
  CHECK(cache.find("E", 1, t0, 5000).fresh);
  // bounded: a third key evicts the least recently used one ("A" was used after "E")
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  cache.put("C", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.size() == 2);
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  CHECK(!cache.find("E", 1, t0, 1500).fresh);
  CHECK(!cache.find("E", 1, t0, 1500).reparsed);
  // new trust material drops every entry
  CHECK(!cache.find("A", 2, t0, 1500).fresh);
  CHECK(cache.size() == 0);
  // a result based on replaced material is not stored
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.size() == 0);
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 2, t0));
  CHECK(cache.find("A", 2, t0, 1500).fresh);
}

TEST_CASE("verifier: a trust reload invalidates cached results") {
  sytest::TempDir dir;
  std::string crl = dir.file("crl.pem");
  sytest::FakeContext ctx;
  auto verifier = startedVerifierWithCrlFile(crl, ctx);
  const std::string revoked = pySign("revoked", unsignedEnvelope());
  CHECK(passes(verify(*verifier, fromWire(revoked), ctx)));
  CHECK(passes(verify(*verifier, fromWire(revoked), ctx)));
  CHECK(ctx.value("cert_cache_hits") >= 1);  // the certificate is now cached as valid
  const std::uint64_t reloads = verifier->trust().reloads();

  sytest::writeFile(dir.file("crl.new"), sytest::readFile(path("crl.pem")));
  REQUIRE(std::rename(dir.file("crl.new").c_str(), crl.c_str()) == 0);
  auto replaced = std::chrono::steady_clock::now();
  auto deadline = replaced + std::chrono::seconds(10);
  VerifyResult last{Verdict::Kind::Pass, ""};
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(revoked), ctx);
    if (!passes(last)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync point
  }
  auto took = std::chrono::steady_clock::now() - replaced;
  CHECK(last.reason == "revoked");
  CHECK(verifier->trust().reloads() > reloads);
  // Cached for at most a second, then the file check (at most once a second) sees the new CRL.
  CHECK(took < std::chrono::milliseconds(2500));
  // and the refusal sticks (no stale Ok entry survives the reload)
  for (int k = 0; k < 5; ++k) {
    CHECK(verify(*verifier, fromWire(revoked), ctx).reason == "revoked");
  }
}

TEST_CASE("verifier: a certificate cached as valid is refused once it expires") {
  auto r = sytest::run(sytest::pyHelper() + " leaf '" + pki().path() + "' shortlived 5");
  REQUIRE(r.status == 0);
  const std::int64_t not_after = std::stoll(r.out);
  VerifierOptions o;
  o.policy = "{\"" + kTopic + "\":[\"shortlived.example.org\"]}";
  auto verifier = makeVerifier(o);
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string msg = pySign("shortlived", unsignedEnvelope());
  REQUIRE(std::time(nullptr) < not_after);  // signing took less than the validity period
  int passed = 0;
  VerifyResult last{Verdict::Kind::Pass, ""};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(msg), ctx);
    if (!passes(last)) {
      break;
    }
    ++passed;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync point
  }
  const std::int64_t refused_at = std::time(nullptr);
  CHECK(passed >= 1);
  CHECK(ctx.value("cert_cache_hits") >= 1);  // it was served from the cache while valid
  CHECK(last.reason == "expired");
  CHECK(refused_at >= not_after);
  CHECK(refused_at <= not_after + 1);  // refused at once, not a cache lifetime later
  for (int k = 0; k < 3; ++k) {
    CHECK(verify(*verifier, fromWire(msg), ctx).reason == "expired");
  }
}

TEST_CASE("verifier: the instances of one factory on 4 threads (filter workers) give every message its verdict") {
  VerifierOptions o;
  o.policy = "{\"" + kTopic + "\":[\"good.example.org\"],\"org.fedoraproject.dev.other\":[\"other.example.org\"]}";
  auto factory = makeVerifierFactory(o);
  sytest::FakeContext ctx;
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Verifier>> workers;  // one per thread, sharing the trust store and cache
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(factory->make());
    REQUIRE(workers.back()->start(ctx).isOk());
  }

  struct Case {
    Message msg;
    std::string expected;  ///< "" = pass
  };
  std::vector<Case> cases;
  for (const auto &s : pySignMany("good", 3)) {
    cases.push_back({fromWire(s), ""});
  }
  const std::string good = pySign("good", unsignedEnvelope());
  auto tampered = json::parse(good);
  tampered->set("i", json::Value::fromInt(8));
  cases.push_back({fromWire(json::canonical(*tampered)), "bad_signature"});
  cases.push_back({fromWire(pySign("other", unsignedEnvelope())), "policy_denied"});
  cases.push_back({fromWire(pySign("other", unsignedEnvelope("org.fedoraproject.dev.other")),
                            "org.fedoraproject.dev.other"),
                   ""});
  cases.push_back({fromWire(pySign("revoked", unsignedEnvelope())), "revoked"});
  cases.push_back({fromWire(pySign("foreign", unsignedEnvelope())), "untrusted_certificate"});
  cases.push_back({fromWire(pySign("expired", unsignedEnvelope())), "expired"});
  cases.push_back({fromWire(unsignedEnvelope()), "unsigned"});
  auto bad_cert = json::parse(good);
  bad_cert->set("certificate", json::Value::fromString("QUJD\nR"));
  cases.push_back({fromWire(json::canonical(*bad_cert)), "bad_base64"});
  const std::uint64_t passing = static_cast<std::uint64_t>(
      std::count_if(cases.begin(), cases.end(), [](const Case &c) { return c.expected.empty(); }));

  // Long enough for cached entries to age out and be re-checked while other threads use them.
  const auto run_for = std::chrono::milliseconds(1500);
  std::vector<std::uint64_t> done(kThreads, 0);
  std::vector<std::vector<std::string>> wrong(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto until = std::chrono::steady_clock::now() + run_for;
      std::size_t k = static_cast<std::size_t>(t);  // each thread starts elsewhere in the list
      while (std::chrono::steady_clock::now() < until || done[t] < 200) {
        const Case &c = cases[k % cases.size()];
        Message m = c.msg;
        Verdict v = workers[static_cast<std::size_t>(t)]->process(ctx, m);
        std::string got = v.kind == Verdict::Kind::Pass ? std::string() : std::string(v.reason);
        if (got != c.expected) {
          wrong[t].push_back("case " + std::to_string(k % cases.size()) + ": got '" + got + "', expected '" +
                             c.expected + "'");
        }
        ++done[t];
        ++k;
      }
    });
  }
  for (auto &th : threads) {
    th.join();
  }
  std::uint64_t expected_verified = 0;
  for (int t = 0; t < kThreads; ++t) {
    CHECK_MESSAGE(wrong[t].empty(), "thread " << t << ": " << (wrong[t].empty() ? "" : wrong[t].front()));
    // thread t processed cases t, t+1, ... done[t] times in a row
    for (std::uint64_t n = 0; n < done[t]; ++n) {
      expected_verified += cases[(static_cast<std::size_t>(t) + n) % cases.size()].expected.empty() ? 1 : 0;
    }
  }
  CHECK(passing == 4);
  CHECK(ctx.value("verified") == expected_verified);
  CHECK(ctx.value("cert_cache_hits") > 0);
}

TEST_CASE("signer: the instances of one factory on 4 threads (filter workers) sign every message once, `i` unique") {
  auto factory = makeSignerFactory();
  sytest::FakeContext ctx;
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Signer>> workers;  // one per thread, sharing the key and `i`
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(factory->make());
    REQUIRE(workers.back()->start(ctx).isOk());
  }
  VerifierOptions o;
  o.policy = "{}";
  o.nitpicky = false;
  auto verifier = makeVerifier(o);
  sytest::FakeContext vctx;
  REQUIRE(verifier->start(vctx).isOk());

  constexpr int kEach = 50;
  std::vector<std::vector<Message>> out(kThreads);
  std::vector<int> failed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kEach; ++n) {
        Message m;
        m.setTopic(kTopic);
        m.setId("id-" + std::to_string(t) + "-" + std::to_string(n));
        m.setBody("{\"thread\":" + std::to_string(t) + ",\"n\":" + std::to_string(n) + "}");
        if (workers[static_cast<std::size_t>(t)]->process(ctx, m).kind != Verdict::Kind::Pass) {
          ++failed[t];
          continue;
        }
        out[t].push_back(std::move(m));
      }
    });
  }
  for (auto &th : threads) {
    th.join();
  }
  std::set<std::string> seqs;
  std::size_t verified = 0;
  for (int t = 0; t < kThreads; ++t) {
    CHECK(failed[t] == 0);
    for (auto &m : out[t]) {
      auto env = json::parse(m.envelope()->text);
      REQUIRE(env);
      REQUIRE(env->find("i") != nullptr);
      seqs.insert(env->find("i")->text);
      verified += passes(verify(*verifier, m, vctx)) ? 1 : 0;
    }
  }
  CHECK(verified == kThreads * kEach);
  CHECK(seqs.size() == kThreads * kEach);  // the builder's `i` was not raced
}

TEST_CASE("signer: the instances of one entry (filter workers) share one `i` sequence") {
  auto seqOf = [](Signer &signer, sytest::FakeContext &ctx, int n) {
    Message m;
    m.setTopic(kTopic);
    m.setId("id-" + std::to_string(n));
    m.setBody("{\"n\":" + std::to_string(n) + "}");
    REQUIRE(signer.process(ctx, m).kind == Verdict::Kind::Pass);
    return std::stoull(json::parse(m.envelope()->text)->find("i")->text);
  };
  // Two workers' instances of pipelines.shared.filters[0] (one factory): one sequence
  // between them.
  auto shared = makeSignerFactory();
  auto a = shared->make();
  auto b = shared->make();
  sytest::FakeContext ctx_a("shared");
  sytest::FakeContext ctx_b("shared");
  REQUIRE(a->start(ctx_a).isOk());
  REQUIRE(b->start(ctx_b).isOk());
  std::vector<unsigned long long> seen;
  for (int n = 0; n < 6; ++n) {
    seen.push_back(n % 2 == 0 ? seqOf(*a, ctx_a, n) : seqOf(*b, ctx_b, n));
  }
  CHECK(seen == std::vector<unsigned long long>{1, 2, 3, 4, 5, 6});
  // Another pipeline's signer (another factory) counts on its own.
  auto c = makeSigner();
  sytest::FakeContext ctx_c("other");
  REQUIRE(c->start(ctx_c).isOk());
  CHECK(seqOf(*c, ctx_c, 0) == 1);
  CHECK(seqOf(*a, ctx_a, 7) == 7);
}

TEST_CASE("verifier: timing with and without the certificate cache (printed, not asserted)") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string signed_msg = pySign("good", unsignedEnvelope());
  const Message msg = fromWire(signed_msg);
  constexpr int kRounds = 500;
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < kRounds; ++k) {
    Message m = msg;
    REQUIRE(verifier->process(ctx, m).kind == Verdict::Kind::Pass);
  }
  auto t1 = std::chrono::steady_clock::now();
  // What every message paid before the cache: decode, parse and chain-check the certificate.
  auto field = std::string(*json::parse(signed_msg)->findString("certificate"));
  plugins::TrustStore trust(path("ca.crt"), path("crl.pem"), -1);
  REQUIRE(trust.load(nullptr));
  for (int k = 0; k < kRounds; ++k) {
    auto pem = x509::base64Decode(field);
    REQUIRE(pem);
    x509::CertPtr cert = x509::certFromPem(*pem, nullptr);
    REQUIRE(cert);
    std::string detail;
    REQUIRE(trust.verify(cert.get(), &detail, nullptr) == plugins::TrustStore::Check::Ok);
  }
  auto t2 = std::chrono::steady_clock::now();
  auto us = [](auto d) { return std::chrono::duration<double, std::micro>(d).count() / kRounds; };
  CHECK(ctx.value("verified") == static_cast<std::uint64_t>(kRounds));
  MESSAGE("verify one message (cached certificate): " << us(t1 - t0) << " us; certificate decode + parse + "
                                                        "chain check, saved per cache hit: "
                                                     << us(t2 - t1) << " us");
}

// ---------------------------------------------------------------------------------------
// loop-guard
