// A C++ program on tinymalloc: libstdc++'s operator new goes through malloc
// and its aligned new (over-aligned types) through aligned_alloc. Containers,
// strings, shared_ptr and over-aligned objects churn in four threads; the
// printed digest must equal the plain run's, and every over-aligned object
// must really be aligned.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct alignas(256) Wide {
  std::uint64_t value[8];
};

static std::uint64_t work(unsigned seed, bool *aligned_ok)
{
  std::uint64_t x = seed * 2654435761u + 1;
  auto next = [&x] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  std::map<std::string, std::vector<int>> tree;
  std::unordered_map<std::uint64_t, std::shared_ptr<std::string>> hash;
  std::vector<std::unique_ptr<Wide>> wides;
  std::uint64_t digest = 0;
  for (int i = 0; i < 40000; i++) {
    std::string key = "k" + std::to_string(next() % 5000);
    tree[key].push_back(i);
    hash[next() % 3000] = std::make_shared<std::string>(key + std::string(next() % 200, 'x'));
    auto wide = std::make_unique<Wide>();
    if (reinterpret_cast<std::uintptr_t>(wide.get()) % alignof(Wide) != 0) *aligned_ok = false;
    wide->value[i % 8] = next();
    wides.push_back(std::move(wide));
    if (wides.size() > 500) wides.erase(wides.begin(), wides.begin() + 250);
  }
  for (auto &entry : tree)
    digest = digest * 31 + entry.first.size() + entry.second.size();
  for (auto &entry : hash)
    digest += entry.first * entry.second->size();
  return digest;
}

int main()
{
  std::uint64_t digests[4];
  bool aligned[4] = {true, true, true, true};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; t++)
    threads.emplace_back([t, &digests, &aligned] { digests[t] = work(t, &aligned[t]); });
  for (auto &thread : threads)
    thread.join();
  for (unsigned t = 0; t < 4; t++)
    std::printf("thread %u: digest %llu aligned %s\n", t, static_cast<unsigned long long>(digests[t]),
                aligned[t] ? "yes" : "NO");
  return 0;
}
