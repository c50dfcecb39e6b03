from chalicelib.domain.costs import dynamodb_write_costs, prices


def test_on_demand_vs_provisioned_for_a_steady_load() -> None:
    # 10 WCU/s all month: 25.92 M write units on demand; 15 WCU provisioned at 70 % of the peak.
    costs = dynamodb_write_costs(10, 10)
    table = prices()["dynamodb"]
    assert costs["on_demand_usd_month"] == round(25.92 * table["on_demand_write_per_million"], 2)
    assert costs["provisioned_wcu"] == 15
    assert costs["provisioned_usd_month"] == round(15 * 730 * table["provisioned_wcu_hour"], 2)
    assert costs["cheaper"] == "provisioned"
    assert costs["prices_as_of"] == prices()["as_of"]


def test_a_spiky_load_is_cheaper_on_demand() -> None:
    costs = dynamodb_write_costs(0.1, 200)
    assert costs["cheaper"] == "on_demand"
