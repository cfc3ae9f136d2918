defmodule Tms.Scraper do
  @moduledoc """
  Scrapes Prometheus exporters into a store, as a Prometheus scrape job does.

      children = [
        {Tms, name: :metrics, data_dir: "/var/lib/my_app/metrics"},
        {Tms.Scraper,
         store: :metrics,
         jobs: [
           %{job: "node", targets: ["127.0.0.1:9100"], interval: 15_000, timeout: 10_000,
             path: "/metrics", labels: %{"env" => "prod"}}
         ]}
      ]

  Every target is pulled by its own process with `:httpc`, every `interval`
  milliseconds, its first scrape delayed by a fixed fraction of the interval
  derived from the job and target, so targets do not fire together. A
  scrape's body goes through `Tms.import/4` in one call, its samples stamped
  with the scrape's start time unless they carry their own, with `job`,
  `instance` (the target) and the job's `labels` added; a label of the body
  that clashes with those is kept as `exported_<name>` (Prometheus'
  `honor_labels: false`). Each scrape also writes `up` (1),
  `scrape_duration_seconds` and `scrape_samples_scraped` for the target; a
  failed scrape (a connection error, a timeout, a status other than 200, a
  body that does not parse) writes `up 0` and nothing else.

  Job fields: `job` and `targets` (`"host:port"` strings) are required;
  `interval` defaults to 15,000 ms, `timeout` to the smaller of 10,000 ms and
  the interval, `path` to `"/metrics"`, `labels` to none. Start the scraper
  after its store, or give the jobs to the store itself as its `scrape:`
  option, which starts the scraper in the store's supervision tree.
  """

  use Supervisor

  @doc false
  def child_spec(opts) do
    %{id: {__MODULE__, opts[:store]}, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc "Starts the scraper; raises `ArgumentError` for bad options."
  def start_link(opts) do
    opts = Keyword.validate!(opts, [:store, jobs: [], name: nil])
    store = opts[:store] || raise ArgumentError, "Tms.Scraper needs store:"
    jobs = jobs!(opts[:jobs])
    Supervisor.start_link(__MODULE__, {store, jobs}, if(opts[:name], do: [name: opts[:name]], else: []))
  end

  @impl true
  def init({store, jobs}) do
    {:ok, _} = Application.ensure_all_started(:inets)

    children =
      for job <- jobs, target <- job.targets do
        Supervisor.child_spec({Tms.Scraper.Target, {store, job, target}}, id: {job.job, target})
      end

    Supervisor.init(children, strategy: :one_for_one)
  end

  @doc false
  # The jobs with their defaults filled in; raises ArgumentError naming the
  # first bad field (the store's `scrape:` option is checked here too).
  def jobs!(jobs) when is_list(jobs), do: Enum.map(jobs, &job!/1)
  def jobs!(other), do: raise(ArgumentError, "scrape jobs must be a list, got: #{inspect(other)}")

  defp job!(job) when is_map(job) do
    job = Map.merge(%{interval: 15_000, path: "/metrics", labels: %{}}, job)
    job = Map.put_new(job, :timeout, min(10_000, job.interval))

    checks = [
      {is_binary(job[:job]) and job[:job] != "", "job: a non-empty string"},
      {is_list(job[:targets]) and Enum.all?(job[:targets], &target?/1),
       "targets: a list of \"host:port\" strings"},
      {is_integer(job.interval) and job.interval > 0, "interval: positive milliseconds"},
      {is_integer(job.timeout) and job.timeout > 0 and job.timeout <= job.interval,
       "timeout: positive milliseconds, at most the interval"},
      {is_binary(job.path) and String.starts_with?(job.path, "/"), "path: starting with /"},
      {is_map(job.labels) and Enum.all?(job.labels, fn {k, v} -> is_binary(k) and is_binary(v) end),
       "labels: a map of strings"}
    ]

    case Enum.find(checks, fn {ok, _} -> not ok end) do
      nil -> job
      {_, what} -> raise ArgumentError, "Tms.Scraper job #{inspect(job[:job])} needs #{what}"
    end
  end

  defp job!(other), do: raise(ArgumentError, "a Tms.Scraper job must be a map, got: #{inspect(other)}")

  defp target?(target), do: is_binary(target) and Regex.match?(~r/^[^\/\s:]+:\d+$/, target)
end
