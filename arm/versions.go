package arm

// API versions each built-in surface accepts. They cover what the Azure SDK
// for Go, the Azure CLI and the ARM auto-registration policy send.
var (
	resourcesVersions = []string{
		"2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-12-01", "2022-09-01",
		"2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-06-01", "2019-10-01", "2019-08-01",
		"2019-07-01", "2019-05-10", "2019-05-01", "2019-03-01", "2018-05-01", "2018-02-01", "2017-05-10",
		"2016-09-01", "2016-07-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
	}
	subscriptionsVersions = append([]string{
		"2020-01-01", "2019-11-01", "2019-06-01", "2018-06-01", "2016-06-01", "2014-04-01-preview",
	}, resourcesVersions...)
	featuresVersions      = []string{"2021-07-01", "2015-12-01", "2014-08-01-preview"}
	authorizationVersions = []string{
		"2022-05-01-preview", "2022-04-01", "2022-01-01-preview", "2021-04-01-preview", "2020-10-01-preview",
		"2020-08-01-preview", "2020-04-01-preview", "2020-03-01-preview", "2018-09-01-preview",
		"2018-07-01", "2018-01-01-preview", "2017-05-01", "2015-07-01",
	}
)
